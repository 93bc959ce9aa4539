"""S3 event flows: ObjectCreated under index/, compare/ and search/ -> the s3_events function,
results under results/, async retries then a dead-letter queue."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from rekface.adapters.lambda_s3 import FLOW_PREFIXES, RESULTS_PREFIX
from rekface.spec.operations import BY_NAME
from rekface_infra.functions import (
    TABLE_ACTIONS,
    Shared,
    make_function,
    models_environment,
    store_environment,
)
from rekface_infra.nag import acknowledge

# The operations the flows run in process; the role is the union of what they need.
FLOW_OPERATIONS = ("IndexFaces", "CompareFaces", "SearchFacesByImage")
IDEMPOTENCY_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
)
RETRY_ATTEMPTS = 2  # Lambda's async retries of a failed (server-side) invocation, then the DLQ


class Ingest(Construct):
    def __init__(
        self, scope: Construct, id: str, *, shared: Shared, idempotency_table: dynamodb.ITableV2
    ) -> None:
        super().__init__(scope, id)
        config, bucket = shared.config, shared.bucket
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(
            self.dead_letters,
            "AwsSolutions-SQS3",
            "This queue is the dead-letter queue of the S3 flows; a DLQ of a DLQ would only "
            "move the same messages once more. An alarm fires on its first message.",
        )
        self.function, self.role = make_function(
            self,
            "S3Events",
            shared=shared,
            code_dir="s3_events",
            memory_mb=config.image_memory_mb,
            timeout_s=config.ingest_timeout_s,
            with_models=True,
            environment={
                **store_environment(shared),
                **models_environment(config),
                "REKFACE_IDEMPOTENCY_TABLE": idempotency_table.table_name,
            },
            description="rekface S3 flows: index/, compare/, search/ -> results/",
        )
        cfn = self.function.node.default_child
        cfn.add_property_override("DeadLetterConfig.TargetArn", self.dead_letters.queue_arn)  # type: ignore[union-attr]
        self.dead_letters.grant_send_messages(self.role)
        self.function.configure_async_invoke(
            retry_attempts=RETRY_ATTEMPTS, max_event_age=Duration.hours(6)
        )

        access = {a for op in FLOW_OPERATIONS for a in TABLE_ACTIONS[BY_NAME[op].access]}
        self.role.add_to_policy(
            iam.PolicyStatement(actions=sorted(access), resources=[shared.table.table_arn])
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=list(IDEMPOTENCY_ACTIONS), resources=[idempotency_table.table_arn]
            )
        )
        if shared.vectors is not None:
            shared.vectors.grant(self.role, list(FLOW_OPERATIONS))
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[bucket.arn_for_objects(f"{p}*") for p in FLOW_PREFIXES],
            )
        )
        # Comparison jobs look for their other image: listing limited to compare/.
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": ["compare/*"]}},
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"], resources=[bucket.arn_for_objects(f"{RESULTS_PREFIX}*")]
            )
        )
        bucket_ref = Stack.of(self).get_logical_id(bucket.node.default_child)  # type: ignore[arg-type]
        for prefix in (*FLOW_PREFIXES, RESULTS_PREFIX):
            acknowledge(
                self.role,
                f"AwsSolutions-IAM5[Resource::<{bucket_ref}.Arn>/{prefix}*]",
                "The S3 flows read the images dropped under their own prefixes and write "
                "results/<key>.json: object names are only known when the event arrives.",
            )

        for prefix in FLOW_PREFIXES:
            bucket.add_event_notification(
                s3.EventType.OBJECT_CREATED,
                s3n.LambdaDestination(self.function),
                s3.NotificationKeyFilter(prefix=prefix),
            )
