"""Face search on Amazon S3 Vectors (CDK context ``search=s3vectors``): the vector bucket (L1
``CfnVectorBucket``, SSE-S3) and, per function, only the S3 Vectors calls its operation makes
(``rekface.search.s3vectors``), on the indexes of this deployment's prefix.

Indexes are not CloudFormation resources: there is one per collection *incarnation* (and one of
its users), created by rekface on the collection's first write and deleted by DeleteCollection,
so their lifecycle is the API's; as ``CfnIndex`` resources they would be deleted behind
CloudFormation's back (drift) and could not follow collections created after the deploy.
"""

from __future__ import annotations

from aws_cdk import Aws, Fn, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3vectors as s3vectors
from constructs import Construct

from rekface.search.s3vectors import DEFAULT_PREFIX
from rekface_infra.config import StackConfig
from rekface_infra.nag import acknowledge

# What each operation's search notices call (rekface.search.indexed + s3vectors):
#   faces_adding/faces_added: GetVectors (read-back), GetIndex + CreateIndex + PutVectors;
#   faces_deleted: DeleteVectors, then PutVectors to restore a face indexed again meanwhile;
#   users_changed: GetVectors (a face's UserId tag), PutVectors, DeleteVectors (users' index);
#   search: QueryVectors; search_users: QueryVectors + GetVectors (the centroids' data);
#   collection_deleted: DeleteIndex.
_WRITE = ("s3vectors:GetIndex", "s3vectors:CreateIndex", "s3vectors:PutVectors")
VECTOR_ACTIONS: dict[str, tuple[str, ...]] = {
    "IndexFaces": (*_WRITE, "s3vectors:GetVectors"),
    "DeleteFaces": (*_WRITE, "s3vectors:DeleteVectors"),
    "DeleteCollection": ("s3vectors:DeleteIndex",),
    "SearchFaces": ("s3vectors:QueryVectors",),
    "SearchFacesByImage": ("s3vectors:QueryVectors",),
    "SearchUsers": ("s3vectors:QueryVectors", "s3vectors:GetVectors"),
    "SearchUsersByImage": ("s3vectors:QueryVectors", "s3vectors:GetVectors"),
    "AssociateFaces": (*_WRITE, "s3vectors:GetVectors", "s3vectors:DeleteVectors"),
    "DisassociateFaces": (*_WRITE, "s3vectors:GetVectors", "s3vectors:DeleteVectors"),
    "DeleteUser": (*_WRITE, "s3vectors:GetVectors", "s3vectors:DeleteVectors"),
}


class VectorSearch(Construct):
    def __init__(self, scope: Construct, id: str, *, config: StackConfig) -> None:
        super().__init__(scope, id)
        self.prefix = DEFAULT_PREFIX
        # Vector bucket names are 3-63 lowercase letters, digits and hyphens, unique in the
        # account and Region: the stack's own UUID makes one per deployment.
        self.name = config.vector_bucket_name or Fn.join(
            "-", ["rekface", Fn.select(2, Fn.split("/", Aws.STACK_ID))]
        )
        self.bucket = s3vectors.CfnVectorBucket(
            self,
            "VectorBucket",
            vector_bucket_name=self.name,
            encryption_configuration=s3vectors.CfnVectorBucket.EncryptionConfigurationProperty(
                sse_type="AES256"
            ),
        )
        keep = RemovalPolicy.RETAIN if config.deletion_protection else RemovalPolicy.DESTROY
        self.bucket.apply_removal_policy(keep)
        self.bucket_arn = self.bucket.attr_vector_bucket_arn

    def environment(self) -> dict[str, str]:
        return {
            "REKFACE_SEARCH": "s3vectors",
            "REKFACE_VECTOR_BUCKET": self.name,
            "REKFACE_VECTOR_INDEX_PREFIX": self.prefix,
        }

    def grant(self, role: iam.Role, operations: list[str]) -> None:
        actions = sorted({a for op in operations for a in VECTOR_ACTIONS.get(op, ())})
        if not actions:
            return
        # Every index of this deployment: <bucket ARN>/index/<prefix>*.
        indexes = Fn.join("", [self.bucket_arn, f"/index/{self.prefix}*"])
        role.add_to_policy(iam.PolicyStatement(actions=actions, resources=[indexes]))
        logical = Stack.of(self).get_logical_id(self.bucket)
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::<{logical}.VectorBucketArn>/index/{self.prefix}*]",
            "One S3 Vectors index per collection, created at run time by the API (collection "
            "ids are not known at deploy time): the grant covers this deployment's index "
            "prefix in its own vector bucket, and only the calls the operation makes.",
        )
