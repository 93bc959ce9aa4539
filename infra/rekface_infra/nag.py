"""cdk-nag (AwsSolutions pack, cdk-nag v3 = CDK's Validations API) and the one way this app
acknowledges a rule: next to the resource, with the reason written out."""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Accept ``rule`` (e.g. ``AwsSolutions-IAM5[Resource::*]``) on ``scope`` and its children."""
    if len(reason) < 40:
        raise ValueError(f"acknowledging {rule}: write down why (got {reason!r})")
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def apply(app: App) -> None:
    # write_suppressions_to_cloud_formation: the reasons also land in the template's Metadata,
    # where auditors (and the tests) can read them.
    Validations.of(app).add_plugins(
        AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True)
    )
