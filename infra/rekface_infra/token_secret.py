"""The HMAC key of pagination tokens, generated at deploy time in Secrets Manager.

Only the functions whose operation pages (ListCollections, ListFaces, ListUsers: an input with
``NextToken`` in the botocore model, ``rekface.adapters.token_secret``) get its ARN
(``REKFACE_TOKEN_SECRET_ARN``) and ``secretsmanager:GetSecretValue`` on this one secret; they read
it once per cold start. Nobody can derive it from the stack (the old key was the stack id's UUID,
readable in every ARN of the stack).
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from rekface.adapters.token_secret import SECRET_ARN_ENV
from rekface_infra.nag import acknowledge

KEY_LENGTH = 64  # characters from 62 letters and digits: ~381 bits


class TokenSecret(Construct):
    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        self.secret = secretsmanager.Secret(
            self,
            "Secret",
            description="rekface: HMAC key that signs pagination tokens (ListFaces and kin)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=KEY_LENGTH, exclude_punctuation=True, include_space=False
            ),
            # A token outlives nothing but the listing it pages through: a new key after a
            # stack is deleted and created again only ends listings in progress.
            removal_policy=RemovalPolicy.DESTROY,
        )
        acknowledge(
            self.secret,
            "AwsSolutions-SMG4",
            "The secret is the HMAC key of pagination tokens, not a credential: nothing outside "
            "the stack knows or uses it, and it grants no access (a token only proves that this "
            "deployment issued it). Rotation would only end the listings in progress; to rotate, "
            "put a new value (aws secretsmanager put-secret-value) and functions read it at their "
            "next cold start. A rotation Lambda would add a function and a role for no gain.",
        )

    def environment(self) -> dict[str, str]:
        return {SECRET_ARN_ENV: self.secret.secret_arn}

    def grant_read(self, role: iam.IRole) -> None:
        """GetSecretValue on this secret only (not DescribeSecret: the code never calls it)."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue"], resources=[self.secret.secret_arn]
            )
        )
