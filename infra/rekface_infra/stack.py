"""The stack: composes the constructs and exports what a user needs (URL, bucket, table)."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from rekface_infra.api import Api
from rekface_infra.config import StackConfig
from rekface_infra.functions import Functions, Shared
from rekface_infra.ingest import Ingest
from rekface_infra.layers import Layers
from rekface_infra.monitoring import Monitoring
from rekface_infra.nag import acknowledge
from rekface_infra.storage import Storage
from rekface_infra.token_secret import TokenSecret
from rekface_infra.vectors import VectorSearch


class RekfaceStack(Stack):
    def __init__(self, scope: Construct, id: str, *, config: StackConfig, **kwargs: Any) -> None:
        super().__init__(scope, id, **kwargs)
        self.config = config
        self.storage = Storage(self, "Storage", config=config)
        self.layers = Layers(self, "Layers", config=config)
        self.vectors = (
            VectorSearch(self, "Vectors", config=config) if config.search == "s3vectors" else None
        )
        self.token_secret = TokenSecret(self, "TokenSecret")
        shared = Shared(
            config,
            self.layers,
            self.storage.table,
            self.storage.bucket,
            self.vectors,
            self.token_secret,
        )
        self.functions = Functions(self, "Functions", shared=shared)
        self.api = Api(
            self,
            "Api",
            config=config,
            functions=self.functions.by_operation,
            router=self.functions.router,
        )
        self.ingest = Ingest(
            self, "Ingest", shared=shared, idempotency_table=self.storage.idempotency_table
        )
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            config=config,
            api=self.api.api,
            functions={
                **self.functions.by_operation,
                "WireProtocol": self.functions.router,
                "S3Events": self.ingest.function,
            },
            ingest_function=self.ingest.function,
            dead_letters=self.ingest.dead_letters,
        )
        self._acknowledge_cdk_internals()

        CfnOutput(self, "ApiUrl", value=self.api.url, description="endpoint_url for boto3")
        CfnOutput(self, "BucketName", value=self.storage.bucket.bucket_name)
        CfnOutput(self, "TableName", value=self.storage.table.table_name)
        CfnOutput(self, "DeadLetterQueueUrl", value=self.ingest.dead_letters.queue_url)
        CfnOutput(self, "AlarmTopicArn", value=self.monitoring.topic.topic_arn)
        if self.vectors is not None:
            CfnOutput(self, "VectorBucketName", value=self.vectors.name)
        if config.auth == "api_key":
            CfnOutput(
                self,
                "ApiKeyId",
                value=self.api.api_key.key_id,
                description="aws apigateway get-api-key --include-value --api-key <id>",
            )

    def _acknowledge_cdk_internals(self) -> None:
        """The bucket-notification handler is a Lambda CDK writes and owns (one per stack)."""
        for child in self.node.children:
            if child.node.id.startswith("BucketNotificationsHandler"):
                acknowledge(
                    child,
                    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                    "CDK's own bucket-notification custom resource: it runs once per deploy to "
                    "configure S3 notifications; its role comes from aws-cdk-lib.",
                )
                acknowledge(
                    child,
                    "AwsSolutions-IAM5[Resource::*]",
                    "CDK's bucket-notification custom resource needs s3:PutBucketNotification "
                    "and is written by aws-cdk-lib with a '*' resource; it only runs at deploy.",
                )
