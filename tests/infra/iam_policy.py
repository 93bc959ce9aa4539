"""IAM as it decides one call: a function's identity policy from the synthesized template,
CloudFormation references resolved to a deployment's physical names, evaluated the way IAM does
(an explicit Deny wins, then any Allow, else the implicit deny), with wildcards in actions and
resources and the condition operators the stack uses.

This is the subset the rekface stack needs, not all of IAM: identity policies only (no resource
policies, permission boundaries or SCPs), and an unknown condition operator or intrinsic function
raises instead of guessing, so a new construct in the stack fails loudly here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# -- CloudFormation references -> physical values -------------------------------------------


@dataclass
class Deployment:
    """Physical names of a stack's resources, as one deployment would have them."""

    template: dict[str, Any]
    region: str = "us-east-1"
    account: str = "123456789012"
    partition: str = "aws"
    stack_id: str = (
        "arn:aws:cloudformation:us-east-1:123456789012:stack/Rekface/"
        "8a2f4c1e-3b7d-4e59-9c0a-1f2e3d4c5b6a"
    )
    names: dict[str, str] = field(default_factory=dict)  # logical id -> physical name
    refs: dict[str, str] = field(default_factory=dict)  # logical id -> Ref value, if not the name

    def name(self, logical_id: str) -> str:
        return self.names.get(logical_id) or logical_id.lower()[:60]

    def ref(self, logical_id: str) -> str:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": self.partition,
            "AWS::StackId": self.stack_id,
            "AWS::StackName": self.stack_id.split("/")[1],
            "AWS::URLSuffix": "amazonaws.com",
        }
        if logical_id in pseudo:
            return pseudo[logical_id]
        if logical_id in self.refs:
            return self.refs[logical_id]
        kind = self.template["Resources"][logical_id]["Type"]
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{self.region}.amazonaws.com/{self.account}/{self.name(logical_id)}"
        if kind == "AWS::SecretsManager::Secret":  # Ref of a secret is its ARN
            return self.arn(logical_id)
        return self.name(logical_id)

    def arn(self, logical_id: str) -> str:
        kind = self.template["Resources"][logical_id]["Type"]
        name, r, a, p = self.name(logical_id), self.region, self.account, self.partition
        arns = {
            "AWS::DynamoDB::GlobalTable": f"arn:{p}:dynamodb:{r}:{a}:table/{name}",
            "AWS::DynamoDB::Table": f"arn:{p}:dynamodb:{r}:{a}:table/{name}",
            "AWS::S3::Bucket": f"arn:{p}:s3:::{name}",
            "AWS::Lambda::Function": f"arn:{p}:lambda:{r}:{a}:function:{name}",
            "AWS::SQS::Queue": f"arn:{p}:sqs:{r}:{a}:{name}",
            "AWS::Logs::LogGroup": f"arn:{p}:logs:{r}:{a}:log-group:{name}:*",
            "AWS::SNS::Topic": f"arn:{p}:sns:{r}:{a}:{name}",
            "AWS::IAM::Role": f"arn:{p}:iam::{a}:role/{name}",
            "AWS::S3Vectors::VectorBucket": f"arn:{p}:s3vectors:{r}:{a}:bucket/{name}",
        }
        if logical_id in self.refs and kind == "AWS::SecretsManager::Secret":
            return self.refs[logical_id]
        if kind == "AWS::SecretsManager::Secret":
            return f"arn:{p}:secretsmanager:{r}:{a}:secret:{name}-AbCdEf"
        if kind not in arns:
            raise NotImplementedError(f"the ARN of a {kind} ({logical_id})")
        return arns[kind]

    def get_att(self, logical_id: str, attribute: str) -> str:
        if attribute in ("Arn", "VectorBucketArn"):
            return self.arn(logical_id)
        if attribute == "QueueName":
            return self.name(logical_id)
        raise NotImplementedError(f"Fn::GetAtt {logical_id}.{attribute}")

    def resolve(self, value: Any) -> Any:
        """A template value with its intrinsic functions evaluated."""
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1 or not next(iter(value)).startswith(("Fn::", "Ref")):
            return {k: self.resolve(v) for k, v in value.items()}
        ((fn, arg),) = value.items()
        if fn == "Ref":
            return self.ref(arg)
        if fn == "Fn::GetAtt":
            return self.get_att(arg[0], arg[1])
        if fn == "Fn::Join":
            return arg[0].join(str(self.resolve(v)) for v in arg[1])
        if fn == "Fn::Select":
            return self.resolve(arg[1])[int(arg[0])]
        if fn == "Fn::Split":
            return str(self.resolve(arg[1])).split(arg[0])
        raise NotImplementedError(f"intrinsic {fn}")

    def function_environment(self, function_id: str) -> dict[str, str]:
        props = self.template["Resources"][function_id]["Properties"]
        variables = props.get("Environment", {}).get("Variables", {})
        return {k: str(self.resolve(v)) for k, v in variables.items()}

    def role_statements(self, function_id: str) -> list[dict[str, Any]]:
        """Every statement of the function's execution role (inline and attached policies)."""
        resources = self.template["Resources"]
        role = resources[function_id]["Properties"]["Role"]["Fn::GetAtt"][0]
        statements = []
        for res in resources.values():
            props = res.get("Properties", {})
            if res["Type"] == "AWS::IAM::Policy" and any(
                r == {"Ref": role} for r in props.get("Roles", [])
            ):
                statements += props["PolicyDocument"]["Statement"]
        for inline in resources[role]["Properties"].get("Policies", []):
            statements += inline["PolicyDocument"]["Statement"]
        if resources[role]["Properties"].get("ManagedPolicyArns"):
            raise NotImplementedError("managed policies are not evaluated here")
        return [self.resolve(s) for s in statements]


# -- one request as IAM sees it --------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    action: str  # "dynamodb:Query"
    resource: str  # an ARN, or "*"
    context: tuple[tuple[str, str], ...] = ()  # condition keys: (("s3:prefix", "compare/a/"),)
    call: str = ""  # what the code called, for messages

    def __str__(self) -> str:
        ctx = ", ".join(f"{k}={v!r}" for k, v in self.context)
        return f"{self.action} on {self.resource}" + (f" [{ctx}]" if ctx else "")


def _listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, value: str, *, case: bool) -> bool:
    """IAM wildcards: * any run of characters (also '/' and ':'), ? one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case else re.IGNORECASE) is not None


def _action_matches(patterns: Sequence[str], action: str) -> bool:
    return any(_glob(p, action, case=False) for p in patterns)


def _resource_matches(patterns: Sequence[str], resource: str) -> bool:
    return any(_glob(p, resource, case=True) for p in patterns)


def _string_like(values: Sequence[str], patterns: Sequence[str]) -> bool:
    return any(_glob(p, v, case=True) for v in values for p in patterns)


CONDITION_OPERATORS = {
    "StringEquals": lambda vs, ps: any(v in ps for v in vs),
    "StringNotEquals": lambda vs, ps: not any(v in ps for v in vs),
    "StringEqualsIgnoreCase": lambda vs, ps: any(v.lower() in {p.lower() for p in ps} for v in vs),
    "StringLike": _string_like,
    "StringNotLike": lambda vs, ps: not _string_like(vs, ps),
    "ArnEquals": lambda vs, ps: any(v in ps for v in vs),
    "ArnLike": _string_like,
    "ArnNotLike": lambda vs, ps: not _string_like(vs, ps),
    "Bool": lambda vs, ps: any(v.lower() in {str(p).lower() for p in ps} for v in vs),
}


def _conditions_hold(conditions: Mapping[str, Mapping[str, Any]], request: Request) -> bool:
    context: dict[str, list[str]] = {}
    for key, value in request.context:
        context.setdefault(key.lower(), []).append(value)
    for operator, tests in conditions.items():
        if_exists = operator.endswith("IfExists")
        base = operator.removesuffix("IfExists")
        if base not in CONDITION_OPERATORS:
            raise NotImplementedError(f"condition operator {operator}")
        for key, patterns in tests.items():
            values = context.get(key.lower())
            if values is None:
                if if_exists:
                    continue
                # A missing key: only the negated operators hold (IAM's rule).
                if base.startswith(("StringNot", "ArnNot")):
                    continue
                return False
            if not CONDITION_OPERATORS[base](values, [str(p) for p in _listify(patterns)]):
                return False
    return True


def _statement_applies(statement: Mapping[str, Any], request: Request) -> bool:
    if "Action" in statement:
        if not _action_matches(_listify(statement["Action"]), request.action):
            return False
    elif "NotAction" in statement:
        if _action_matches(_listify(statement["NotAction"]), request.action):
            return False
    else:
        raise ValueError(f"statement without Action: {statement}")
    if "Resource" in statement:
        if not _resource_matches(_listify(statement["Resource"]), request.resource):
            return False
    elif "NotResource" in statement and _resource_matches(
        _listify(statement["NotResource"]), request.resource
    ):
        return False
    if "Principal" in statement or "NotPrincipal" in statement:
        raise ValueError("a Principal in an identity policy")
    return _conditions_hold(statement.get("Condition", {}), request)


def decide(statements: Sequence[Mapping[str, Any]], request: Request) -> str:
    """``"Allow"``, ``"ExplicitDeny"`` or ``"ImplicitDeny"``."""
    applicable = [s for s in statements if _statement_applies(s, request)]
    if any(s["Effect"] == "Deny" for s in applicable):
        return "ExplicitDeny"
    if any(s["Effect"] == "Allow" for s in applicable):
        return "Allow"
    return "ImplicitDeny"


def allowed(statements: Sequence[Mapping[str, Any]], request: Request) -> bool:
    return decide(statements, request) == "Allow"


__all__ = ["Deployment", "Request", "allowed", "decide"]
