"""One Lambda function and one IAM role per operation, generated from the operation table, plus
the POST / router. What a role may do follows from the operation's ``Access`` and
``reads_images``: a read-only operation cannot write the table, a stateless one cannot touch it,
and only the operations that take an image may read S3 objects."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from rekface.adapters.lambda_router import FUNCTIONS_ENV, READ_TIMEOUT_MARGIN_S, TIMEOUT_ENV
from rekface.adapters.token_secret import paging_operations
from rekface.spec.operations import OPERATIONS, Access, OperationInfo
from rekface_infra.config import REPO, StackConfig
from rekface_infra.layers import Layers, architecture, runtime
from rekface_infra.nag import acknowledge
from rekface_infra.token_secret import TokenSecret
from rekface_infra.vectors import VectorSearch

# The DynamoDB calls of rekface.stores.dynamodb, by what an operation may do. Transactions are
# authorised action by action (TransactWriteItems needs Put/Update/Delete/ConditionCheckItem).
TABLE_READ = ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query")
TABLE_WRITE = (
    *TABLE_READ,
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
)
TABLE_ACTIONS: dict[Access, tuple[str, ...]] = {
    Access.NONE: (),
    Access.READ: TABLE_READ,
    Access.WRITE: TABLE_WRITE,
}

LAMBDA_VCPU_MB = 1769  # Lambda gives one full vCPU at this memory size


def logical_id(name: str) -> str:
    """``DetectFaces`` -> ``DetectFacesFunction``: stable ids for `sam local invoke <id>`."""
    return f"{name}Function"


@dataclass(frozen=True)
class Shared:
    config: StackConfig
    layers: Layers
    table: dynamodb.ITableV2
    bucket: s3.IBucket
    vectors: VectorSearch | None = None  # search=s3vectors: the vector bucket and its grants
    token_secret: TokenSecret | None = None  # the paging functions' HMAC key (Secrets Manager)


def base_environment() -> dict[str, str]:
    return {
        "POWERTOOLS_SERVICE_NAME": "rekface",
        "POWERTOOLS_METRICS_NAMESPACE": "rekface",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }


def store_environment(shared: Shared) -> dict[str, str]:
    return {
        "REKFACE_STORE": "dynamodb",
        "REKFACE_TABLE_NAME": shared.table.table_name,
        "REKFACE_ACCOUNT_ID": Aws.ACCOUNT_ID,
        # The recognizer pack new collections get and CompareFaces uses (-c face_model_version).
        "REKFACE_FACE_MODEL_VERSION": shared.config.face_model_version,
        # Every function with the store uses the same search backend (search notices follow
        # store writes; rekface.search.indexed).
        **(shared.vectors.environment() if shared.vectors is not None else {}),
    }


def models_environment(config: StackConfig) -> dict[str, str]:
    return {
        "REKFACE_MODELS_DIR": "/opt/models",
        # One onnxruntime thread per vCPU Lambda grants (the sandbox shows 2 cores at any size,
        # and two threads on one vCPU's quota only contend).
        "REKFACE_THREADS": str(max(1, config.image_memory_mb // LAMBDA_VCPU_MB)),
    }


def make_function(
    scope: Construct,
    name: str,
    *,
    shared: Shared,
    code_dir: str,
    memory_mb: int,
    timeout_s: int,
    with_models: bool,
    environment: dict[str, str],
    description: str,
) -> tuple[lambda_.Function, iam.Role]:
    """A function with its own role and its own log group (retention set, write-only access).
    The image functions (``with_models``) get the reserved concurrency of the config, if any."""
    config = shared.config
    role = iam.Role(
        scope,
        f"{name}Role",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=f"rekface {name}: least privilege for this function only",
    )
    log_group = logs.LogGroup(
        scope,
        f"{name}Logs",
        retention=retention(config.log_retention_days),
        removal_policy=RemovalPolicy.DESTROY,
    )
    log_group.grant_write(role)
    layers = [shared.layers.deps, shared.layers.package]
    if with_models:
        layers.append(shared.layers.models)
    env = {**base_environment(), **environment}
    # Reserved concurrency caps (and guarantees) the expensive functions only: N for each of the
    # image functions, StackConfig.reserved_total in all; the others share the account's pool.
    reserved = (config.reserved_concurrency or None) if with_models else None
    fn = lambda_.Function(
        scope,
        name,
        description=description,
        runtime=runtime(config),
        architecture=architecture(config),
        handler="app.handler",
        code=lambda_.Code.from_asset(str(REPO / "functions" / code_dir)),
        layers=layers,
        memory_size=memory_mb,
        timeout=Duration.seconds(timeout_s),
        role=role,
        log_group=log_group,
        tracing=lambda_.Tracing.ACTIVE,
        environment=env,
        reserved_concurrent_executions=reserved,
    )
    fn.node.default_child.override_logical_id(logical_id(name))  # type: ignore[union-attr]
    acknowledge(
        role,
        "AwsSolutions-IAM5[Resource::*]",
        "X-Ray's PutTraceSegments/PutTelemetryRecords have no resource-level permissions: "
        "the tracing grant CDK adds for Tracing.ACTIVE must name '*'.",
    )
    acknowledge(
        role,
        f"AwsSolutions-IAM5[Resource::<{_log_ref(scope, log_group)}.Arn>:*]",
        "Write access to this function's own log group: its log streams are created at run "
        "time, so the grant ends in ':*' under one named group.",
    )
    if config.python != "3.13":
        acknowledge(
            fn,
            "AwsSolutions-L1",
            "python3.12 is the runtime the layers are built and sized for (requirements pin "
            "cp312 wheels); moving to a newer runtime is a rebuild with make layers, not a flag.",
        )
    return fn, role


def _log_ref(scope: Construct, log_group: logs.LogGroup) -> str:
    return Stack.of(scope).get_logical_id(log_group.node.default_child)  # type: ignore[arg-type]


def retention(days: int) -> logs.RetentionDays:
    r = logs.RetentionDays
    by_days = {1: r.ONE_DAY, 3: r.THREE_DAYS, 5: r.FIVE_DAYS, 7: r.ONE_WEEK, 14: r.TWO_WEEKS,
               30: r.ONE_MONTH, 60: r.TWO_MONTHS, 90: r.THREE_MONTHS, 180: r.SIX_MONTHS,
               365: r.ONE_YEAR, 731: r.TWO_YEARS, 1827: r.FIVE_YEARS}  # fmt: skip
    if days not in by_days:
        raise ValueError(f"log_retention_days must be one of {sorted(by_days)}, got {days}")
    return by_days[days]


def grant_operation(role: iam.Role, op: OperationInfo, shared: Shared) -> None:
    actions = TABLE_ACTIONS[op.access]
    if actions:
        role.add_to_policy(
            iam.PolicyStatement(actions=list(actions), resources=[shared.table.table_arn])
        )
    if op.reads_images:
        resources = [shared.bucket.arn_for_objects("*")]
        resources += [f"arn:{Aws.PARTITION}:s3:::{b}/*" for b in shared.config.image_buckets]
        role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=resources))
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::<{Stack.of(role).get_logical_id(shared.bucket.node.default_child)}.Arn>/*]",
            "Image operations read any object of the images bucket the caller names in "
            "Image.S3Object (Rekognition's contract): object keys are not known in advance.",
        )
        for b in shared.config.image_buckets:
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{b}/*]",
                "An extra images bucket named in the stack's image_buckets context: its "
                "objects are read by key from Image.S3Object, keys are not known in advance.",
            )


class Functions(Construct):
    def __init__(self, scope: Construct, id: str, *, shared: Shared) -> None:
        super().__init__(scope, id)
        config = shared.config
        self.by_operation: dict[str, lambda_.Function] = {}
        self.roles: dict[str, iam.Role] = {}
        for op in OPERATIONS:
            fn, role = make_function(
                self,
                op.name,
                shared=shared,
                code_dir=op.snake,
                memory_mb=config.image_memory_mb if op.reads_images else config.data_memory_mb,
                timeout_s=config.image_timeout_s if op.reads_images else config.data_timeout_s,
                with_models=op.reads_images,
                environment={
                    **store_environment(shared),
                    **(models_environment(config) if op.reads_images else {}),
                },
                description=f"rekface {op.name} (POST {op.route}; {op.access.value} access)",
            )
            grant_operation(role, op, shared)
            if shared.vectors is not None:
                shared.vectors.grant(role, [op.name])
            if shared.token_secret is not None and op.name in paging_operations():
                fn.add_environment(*next(iter(shared.token_secret.environment().items())))
                shared.token_secret.grant_read(role)
            self.by_operation[op.name] = fn
            self.roles[op.name] = role

        # POST /: forwards to the operations' functions; may invoke them and nothing else. Its
        # Lambda client waits READ_TIMEOUT_MARGIN_S longer than the slowest target may run, and
        # the router itself runs a second longer than that (API Gateway has answered the client
        # at 29 s anyway; the point is that a request is never abandoned and run twice).
        names = {name: fn.function_name for name, fn in self.by_operation.items()}
        target_timeout_s = max(config.image_timeout_s, config.data_timeout_s)
        router_env = {
            FUNCTIONS_ENV: Stack.of(self).to_json_string(names),
            TIMEOUT_ENV: str(target_timeout_s),
        }
        if not config.router_tracing:
            # Lambda still records the router's segment (Tracing.ACTIVE); without the X-Ray SDK
            # the router starts cold ~0.1 s faster (docs/lambda-deployment.md).
            router_env["POWERTOOLS_TRACE_DISABLED"] = "true"
        self.router, self.router_role = make_function(
            self,
            "WireProtocol",
            shared=shared,
            code_dir="wire_protocol",
            memory_mb=config.router_memory_mb,
            timeout_s=target_timeout_s + READ_TIMEOUT_MARGIN_S + 1,
            with_models=False,
            environment=router_env,
            description="rekface POST /: Rekognition wire protocol, routed by X-Amz-Target",
        )
        self.router_role.add_to_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"],
                resources=[fn.function_arn for fn in self.by_operation.values()],
            )
        )
