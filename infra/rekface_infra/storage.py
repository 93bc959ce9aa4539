"""The store's DynamoDB table, the S3 flows' idempotency table and the images/results bucket."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from constructs import Construct

from rekface.stores.dynamodb import TABLE_DEFINITION, TTL_ATTRIBUTE
from rekface_infra.config import StackConfig
from rekface_infra.nag import acknowledge

RESULTS_PREFIX = "results/"


def _key(name: str, kind: str) -> dynamodb.Attribute:
    types = {"S": dynamodb.AttributeType.STRING, "N": dynamodb.AttributeType.NUMBER,
             "B": dynamodb.AttributeType.BINARY}  # fmt: skip
    return dynamodb.Attribute(name=name, type=types[kind])


class Storage(Construct):
    def __init__(self, scope: Construct, id: str, *, config: StackConfig) -> None:
        super().__init__(scope, id)
        keep = RemovalPolicy.RETAIN if config.deletion_protection else RemovalPolicy.DESTROY

        # Key schema from the store's own definition, so the two cannot drift apart.
        kinds = {
            a["AttributeName"]: a["AttributeType"] for a in TABLE_DEFINITION["AttributeDefinitions"]
        }
        keys = {k["KeyType"]: k["AttributeName"] for k in TABLE_DEFINITION["KeySchema"]}
        self.table = dynamodb.TableV2(
            self,
            "Table",
            partition_key=_key(keys["HASH"], kinds[keys["HASH"]]),
            sort_key=_key(keys["RANGE"], kinds[keys["RANGE"]]) if "RANGE" in keys else None,
            billing=dynamodb.Billing.on_demand(),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=config.deletion_protection,
            encryption=dynamodb.TableEncryptionV2.aws_managed_key(),
            time_to_live_attribute=TTL_ATTRIBUTE,
            removal_policy=keep,
        )

        # Powertools idempotency records of the S3 flows (partition key "id", TTL "expiration").
        self.idempotency_table = dynamodb.TableV2(
            self,
            "IdempotencyTable",
            partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
            billing=dynamodb.Billing.on_demand(),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryptionV2.aws_managed_key(),
            time_to_live_attribute="expiration",
            removal_policy=RemovalPolicy.DESTROY,  # a week of dedup records: nothing to keep
        )

        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(365))
            ],
            removal_policy=keep,
        )
        acknowledge(
            self.access_logs,
            "AwsSolutions-S1",
            "This is the server access log bucket of the images bucket; logging it into itself "
            "would loop and another log bucket would only move the question.",
        )

        self.bucket = s3.Bucket(
            self,
            "Bucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="images/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-results",
                    prefix=RESULTS_PREFIX,
                    expiration=Duration.days(config.results_expire_days),
                ),
                s3.LifecycleRule(
                    id="abort-incomplete-uploads",
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                ),
            ],
            removal_policy=keep,
        )
