"""The synthesized stack, checked with aws_cdk.assertions: every function, role, route, alarm and
notification the operation table implies, with the intended properties."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from rekface.adapters.lambda_s3 import FLOW_PREFIXES
from rekface.adapters.token_secret import SECRET_ARN_ENV
from rekface.spec.operations import OPERATIONS, Access
from rekface.stores.dynamodb import TABLE_DEFINITION, TTL_ATTRIBUTE

TABLE_READ = {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"}
TABLE_WRITE = TABLE_READ | {
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
}
EXPECTED_TABLE_ACTIONS = {Access.NONE: set(), Access.READ: TABLE_READ, Access.WRITE: TABLE_WRITE}
PAGING = {"ListCollections", "ListFaces", "ListUsers"}  # NextToken in the botocore model


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def ref_id(value: Any) -> str | None:
    """The logical id behind {"Ref": id} or {"Fn::GetAtt": [id, attr]}."""
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            return value["Fn::GetAtt"][0]
    return None


def role_statements(template: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    out = []
    for policy in resources(template, "AWS::IAM::Policy").values():
        if any(ref_id(r) == role_id for r in policy["Properties"]["Roles"]):
            out.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    role = template["Resources"][role_id]["Properties"]
    assert not role.get("ManagedPolicyArns"), "operation roles carry no managed policies"
    for inline in role.get("Policies", []):
        out.extend(inline["PolicyDocument"]["Statement"])
    return out


def actions(statements: list[dict[str, Any]], prefix: str = "") -> set[str]:
    found = set()
    for st in statements:
        acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        found |= {a for a in acts if a.startswith(prefix)}
    return found


def function_role(template: dict[str, Any], function_id: str) -> str:
    return ref_id(template["Resources"][function_id]["Properties"]["Role"])


@pytest.fixture(scope="module")
def tpl(synth):
    assert synth.error == "", synth.error
    return synth.templates["Rekface"]


@pytest.fixture(scope="module")
def tpl_key(synth):
    return synth.templates["RekfaceApiKey"]


# -- functions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.name)
def test_each_operation_has_its_function(tpl, op):
    fn = tpl["Resources"][f"{op.name}Function"]
    props = fn["Properties"]
    assert fn["Type"] == "AWS::Lambda::Function"
    assert props["Runtime"] == "python3.12" and props["Architectures"] == ["x86_64"]
    assert props["Handler"] == "app.handler" and props["TracingConfig"] == {"Mode": "Active"}
    assert "ReservedConcurrentExecutions" not in props  # not reserved by default
    env = props["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == "rekface"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "rekface"
    assert env["POWERTOOLS_LOG_LEVEL"] == "INFO"
    assert env["REKFACE_STORE"] == "dynamodb" and ref_id(env["REKFACE_TABLE_NAME"])
    assert "REKFACE_TOKEN_SECRET" not in env  # no key derived from the stack any more
    if op.name in PAGING:
        secret = tpl["Resources"][ref_id(env[SECRET_ARN_ENV])]
        assert secret["Type"] == "AWS::SecretsManager::Secret"
    else:
        assert SECRET_ARN_ENV not in env
    layers = {ref_id(layer) for layer in props["Layers"]}
    if op.reads_images:
        assert props["MemorySize"] == 1769 and env["REKFACE_MODELS_DIR"] == "/opt/models"
        assert env["REKFACE_THREADS"] == "1"
        assert len(layers) == 3
    else:
        assert props["MemorySize"] == 512 and "REKFACE_MODELS_DIR" not in env
        assert len(layers) == 2 and not any("Models" in layer for layer in layers)
    assert props["Timeout"] <= 29  # API Gateway gives up at 29 s
    assert f"POST {op.route}" in props["Description"]


def test_one_role_and_log_group_per_function(tpl):
    functions = {
        k: v for k, v in resources(tpl, "AWS::Lambda::Function").items() if k.endswith("Function")
    }
    assert len(functions) == len(OPERATIONS) + 2  # + POST / router + S3 flows
    roles = [function_role(tpl, k) for k in functions]
    assert len(set(roles)) == len(roles)
    groups = [ref_id(v["Properties"]["LoggingConfig"]["LogGroup"]) for v in functions.values()]
    assert len(set(groups)) == len(groups)
    for group in groups:
        assert tpl["Resources"][group]["Properties"]["RetentionInDays"] == 30


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.name)
def test_roles_are_least_privilege(tpl, op):
    statements = role_statements(tpl, function_role(tpl, f"{op.name}Function"))
    assert actions(statements, "dynamodb:") == EXPECTED_TABLE_ACTIONS[op.access]
    for st in statements:
        if actions([st], "dynamodb:"):
            assert ref_id(st["Resource"]) == "StorageTableB43FDCE7" or "StorageTable" in str(
                st["Resource"]
            )
    s3_actions = actions(statements, "s3:")
    assert s3_actions == ({"s3:GetObject"} if op.reads_images else set())
    secret_actions = {"secretsmanager:GetSecretValue"} if op.name in PAGING else set()
    assert actions(statements, "secretsmanager:") == secret_actions
    assert actions(statements) - actions(statements, "dynamodb:") - s3_actions - secret_actions == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }
    # No write ever, even on S3.
    assert not {a for a in actions(statements) if a.startswith("s3:Put")}


def test_router_can_only_invoke_the_operation_functions(tpl):
    router = tpl["Resources"]["WireProtocolFunction"]["Properties"]
    env = router["Environment"]["Variables"]
    assert "REKFACE_TABLE_NAME" not in env and "REKFACE_STORE" not in env
    assert len(router["Layers"]) == 2 and router["MemorySize"] == 256
    # Its Lambda client waits longer than the targets may run (29 s), and it runs longer still.
    assert env["REKFACE_FUNCTION_TIMEOUT_S"] == "29" and router["Timeout"] == 32
    assert env["POWERTOOLS_TRACE_DISABLED"] == "true"  # no X-Ray SDK at cold start by default
    # REKFACE_FUNCTIONS: a JSON object, operation -> {"Ref": "<Operation>Function"}.
    parts = env["REKFACE_FUNCTIONS"]["Fn::Join"][1]
    mapping = {}
    for i in range(0, len(parts) - 1, 2):
        name = re.search(r'"(\w+)":"$', parts[i]).group(1)
        mapping[name] = ref_id(parts[i + 1])
    assert mapping == {op.name: f"{op.name}Function" for op in OPERATIONS}

    statements = role_statements(tpl, function_role(tpl, "WireProtocolFunction"))
    assert not actions(statements, "dynamodb:") and not actions(statements, "s3:")
    (invoke,) = [st for st in statements if "lambda:InvokeFunction" in str(st["Action"])]
    assert {ref_id(r) for r in invoke["Resource"]} == {f"{op.name}Function" for op in OPERATIONS}


def test_router_tracing_is_a_choice(tpl_key):
    env = tpl_key["Resources"]["WireProtocolFunction"]["Properties"]["Environment"]["Variables"]
    assert "POWERTOOLS_TRACE_DISABLED" not in env  # -c router_tracing=true: the SDK traces


# -- API ---------------------------------------------------------------------------------------


def _methods(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """POST methods by path ('/' or '/detect-faces')."""
    paths = {
        k: "/" + v["Properties"]["PathPart"]
        for k, v in resources(template, "AWS::ApiGateway::Resource").items()
    }
    out = {}
    for method in resources(template, "AWS::ApiGateway::Method").values():
        props = method["Properties"]
        resource = ref_id(props["ResourceId"])
        path = paths.get(resource, "/")
        out[path] = props
    return out


def _integration_function(props: dict[str, Any]) -> str:
    uri = json.dumps(props["Integration"]["Uri"])
    (fn,) = set(re.findall(r'"(\w+Function)", "Arn"', uri))
    return fn


def test_routes(tpl):
    methods = _methods(tpl)
    assert set(methods) == {"/"} | {op.route for op in OPERATIONS}
    for op in OPERATIONS:
        props = methods[op.route]
        assert props["HttpMethod"] == "POST" and props["AuthorizationType"] == "AWS_IAM"
        assert props["Integration"]["Type"] == "AWS_PROXY"
        assert _integration_function(props) == f"{op.name}Function"
        # Bodies reach the function, which answers a malformed one with SerializationException.
        assert "RequestValidatorId" not in props and "RequestModels" not in props
    root = methods["/"]
    assert root["AuthorizationType"] == "AWS_IAM"
    assert _integration_function(root) == "WireProtocolFunction"


def test_no_body_validation_in_api_gateway(tpl):
    """A gateway response cannot tell a malformed body from an oversized image (one response
    type, no VTL): the functions validate bodies, API Gateway only caps their size (413)."""
    assert not resources(tpl, "AWS::ApiGateway::Model")
    assert not resources(tpl, "AWS::ApiGateway::RequestValidator")


def test_stage_throttling_logs_tracing(tpl):
    (stage,) = resources(tpl, "AWS::ApiGateway::Stage").values()
    props = stage["Properties"]
    assert props["StageName"] == "prod" and props["TracingEnabled"] is True
    assert ref_id(props["AccessLogSetting"]["DestinationArn"])
    assert "$context.requestId" in props["AccessLogSetting"]["Format"]
    (settings,) = props["MethodSettings"]
    assert settings["ThrottlingRateLimit"] == 50 and settings["ThrottlingBurstLimit"] == 100
    assert settings["LoggingLevel"] == "ERROR" and settings["DataTraceEnabled"] is False


def test_gateway_errors_are_rekognition_errors(tpl):
    responses = {
        v["Properties"]["ResponseType"]: v["Properties"]
        for v in resources(tpl, "AWS::ApiGateway::GatewayResponse").values()
    }
    expected = {
        "BAD_REQUEST_BODY": ("SerializationException", "400"),
        "REQUEST_TOO_LARGE": ("ImageTooLargeException", "413"),
        "THROTTLED": ("ThrottlingException", "429"),
        "ACCESS_DENIED": ("AccessDeniedException", "403"),
        "INVALID_SIGNATURE": ("InvalidSignatureException", "403"),
        "EXPIRED_TOKEN": ("ExpiredTokenException", "403"),
        "DEFAULT_5XX": ("InternalServerError", "500"),
    }
    too_large = [kind for kind, (code, _) in expected.items() if code == "ImageTooLargeException"]
    assert too_large == ["REQUEST_TOO_LARGE"]  # only for size
    for kind, (code, status) in expected.items():
        props = responses[kind]
        assert props["StatusCode"] == status
        assert props["ResponseParameters"]["gatewayresponse.header.x-amzn-ErrorType"] == f"'{code}'"
        # What botocore will parse once API Gateway fills in the message:
        body = props["ResponseTemplates"]["application/json"].replace(
            "$context.error.messageString", '"Forbidden"'
        )
        assert json.loads(body)["__type"] == code


def test_api_key_mode(tpl_key):
    methods = _methods(tpl_key)
    for props in methods.values():
        assert props["AuthorizationType"] == "NONE" and props["ApiKeyRequired"] is True
    (plan,) = resources(tpl_key, "AWS::ApiGateway::UsagePlan").values()
    assert plan["Properties"]["Throttle"] == {"BurstLimit": 100, "RateLimit": 50}
    assert resources(tpl_key, "AWS::ApiGateway::UsagePlanKey")
    assert "ApiKeyId" in tpl_key["Outputs"]
    # reserved_concurrency=5: 5 for each image function (the ones that load models), none for
    # the data functions and the router: 6 x 5 = 30 reserved in the account, not 24 x 5.
    image = {f"{op.name}Function" for op in OPERATIONS if op.reads_images} | {"S3EventsFunction"}
    reserved = {
        fid: fn["Properties"].get("ReservedConcurrentExecutions")
        for fid, fn in resources(tpl_key, "AWS::Lambda::Function").items()
        if fid.endswith("Function")
    }
    assert {fid for fid, n in reserved.items() if n is not None} == image
    assert sum(n for n in reserved.values() if n) == 30
    assert all(reserved[fid] == 5 for fid in image)
    # image_buckets: the image operations may read those buckets too, and only they.
    detect = role_statements(tpl_key, function_role(tpl_key, "DetectFacesFunction"))
    assert "arn:" in json.dumps(detect) and "my-photos/*" in json.dumps(detect)
    listing = role_statements(tpl_key, function_role(tpl_key, "ListFacesFunction"))
    assert "my-photos" not in json.dumps(listing)


# -- storage -----------------------------------------------------------------------------------


def test_table(tpl):
    (table,) = [
        v["Properties"]
        for v in resources(tpl, "AWS::DynamoDB::GlobalTable").values()
        if v["Properties"]["KeySchema"][0]["AttributeName"] != "id"
    ]
    assert table["KeySchema"] == TABLE_DEFINITION["KeySchema"]
    assert table["AttributeDefinitions"] == TABLE_DEFINITION["AttributeDefinitions"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    (replica,) = table["Replicas"]
    assert replica["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert replica["DeletionProtectionEnabled"] is True


def test_deletion_protection_is_configurable(tpl_key):
    tables = resources(tpl_key, "AWS::DynamoDB::GlobalTable").values()
    assert all(not t["Properties"]["Replicas"][0].get("DeletionProtectionEnabled") for t in tables)


def test_bucket(tpl):
    buckets = resources(tpl, "AWS::S3::Bucket")
    (images_id,) = [k for k in buckets if k.startswith("StorageBucket")]
    props = buckets[images_id]["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"
    ] == {"SSEAlgorithm": "AES256"}
    rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-results"]["Prefix"] == "results/"
    assert rules["expire-results"]["ExpirationInDays"] == 30
    assert ref_id(props["LoggingConfiguration"]["DestinationBucketName"])
    policies = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in resources(tpl, "AWS::S3::BucketPolicy").values()
        if ref_id(p["Properties"]["Bucket"]) == images_id
    ]
    tls = [
        st
        for sts in policies
        for st in sts
        if st["Effect"] == "Deny" and "aws:SecureTransport" in json.dumps(st)
    ]
    assert tls, "the bucket refuses plain HTTP"


# -- token secret ------------------------------------------------------------------------------


def test_the_token_secret_is_generated_at_deploy_time(tpl):
    (secret_id,) = resources(tpl, "AWS::SecretsManager::Secret")
    generate = tpl["Resources"][secret_id]["Properties"]["GenerateSecretString"]
    assert generate["PasswordLength"] >= 32 and generate["ExcludePunctuation"] is True
    assert "SecretString" not in tpl["Resources"][secret_id]["Properties"]


def test_only_the_paging_functions_may_read_the_token_secret(tpl):
    (secret_id,) = resources(tpl, "AWS::SecretsManager::Secret")
    readers = set()
    for fid in resources(tpl, "AWS::Lambda::Function"):
        if not fid.endswith("Function"):
            continue
        for st in role_statements(tpl, function_role(tpl, fid)):
            if actions([st], "secretsmanager:"):
                assert st["Effect"] == "Allow"
                assert actions([st]) == {"secretsmanager:GetSecretValue"}
                assert ref_id(st["Resource"]) == secret_id  # that one secret, no wildcard
                readers.add(fid)
    assert readers == {f"{name}Function" for name in PAGING}


def test_reserved_concurrency_is_checked_against_the_account_pool():
    from rekface_infra.config import StackConfig

    assert StackConfig(reserved_concurrency=10).reserved_total == 60
    with pytest.raises(ValueError, match="reserves 1200"):
        StackConfig(reserved_concurrency=200).validate()


# -- S3 flows ----------------------------------------------------------------------------------


def test_s3_notifications(tpl):
    (notif,) = resources(tpl, "Custom::S3BucketNotifications").values()
    configs = notif["Properties"]["NotificationConfiguration"]["LambdaFunctionConfigurations"]
    prefixes = set()
    for c in configs:
        assert c["Events"] == ["s3:ObjectCreated:*"]
        assert ref_id(c["LambdaFunctionArn"]) == "S3EventsFunction"
        (rule,) = c["Filter"]["Key"]["FilterRules"]
        assert rule["Name"] == "prefix"
        prefixes.add(rule["Value"])
    assert prefixes == set(FLOW_PREFIXES)  # never results/: no loop


def test_s3_flows_function(tpl):
    props = tpl["Resources"]["S3EventsFunction"]["Properties"]
    queue = ref_id(props["DeadLetterConfig"]["TargetArn"])
    assert tpl["Resources"][queue]["Type"] == "AWS::SQS::Queue"
    assert ref_id(props["Environment"]["Variables"]["REKFACE_IDEMPOTENCY_TABLE"])
    (invoke_config,) = resources(tpl, "AWS::Lambda::EventInvokeConfig").values()
    assert invoke_config["Properties"]["MaximumRetryAttempts"] == 2
    statements = role_statements(tpl, function_role(tpl, "S3EventsFunction"))
    text = json.dumps(statements)
    puts = [st for st in statements if "s3:PutObject" in json.dumps(st["Action"])]
    assert len(puts) == 1 and "/results/*" in json.dumps(puts[0]["Resource"])
    for prefix in FLOW_PREFIXES:
        assert f"/{prefix}*" in text
    assert actions(statements, "dynamodb:") >= TABLE_WRITE
    assert "sqs:SendMessage" in actions(statements, "sqs:")


# -- monitoring, outputs -----------------------------------------------------------------------


def test_alarms(tpl):
    alarms = resources(tpl, "AWS::CloudWatch::Alarm").values()
    by_metric: dict[str, list[dict[str, Any]]] = {}
    for alarm in alarms:
        props = alarm["Properties"]
        assert props["AlarmActions"], "every alarm notifies the topic"
        by_metric.setdefault(props.get("MetricName", ""), []).append(props)
    assert by_metric["5XXError"][0]["Namespace"] == "AWS/ApiGateway"
    (latency,) = by_metric["Latency"]
    assert latency["ExtendedStatistic"] == "p99" and latency["Threshold"] == 5000
    throttled = {ref_id(p["Dimensions"][0]["Value"]) for p in by_metric["Throttles"]}
    assert throttled == {f"{op.name}Function" for op in OPERATIONS} | {
        "WireProtocolFunction",
        "S3EventsFunction",
    }
    assert by_metric["ApproximateNumberOfMessagesVisible"][0]["Namespace"] == "AWS/SQS"
    assert by_metric["Errors"][0]["Dimensions"][0]["Value"] == {"Ref": "S3EventsFunction"}


def test_outputs(tpl):
    assert {"ApiUrl", "BucketName", "TableName", "DeadLetterQueueUrl"} <= set(tpl["Outputs"])
    assert "ApiKeyId" not in tpl["Outputs"]


# -- cdk-nag, cfn-lint -------------------------------------------------------------------------


def test_cdk_nag_reports_no_unacknowledged_finding(synth):
    findings = [
        f"{v['ruleName']}: {c['constructPath']}"
        for report in synth.report.get("pluginReports", [])
        for v in report.get("violations", [])
        for c in v["violatingConstructs"]
    ]
    assert findings == [] and synth.error == "", "\n".join(findings) or synth.error


def test_every_acknowledgment_is_written_down(tpl):
    acknowledged = [
        rule
        for resource in tpl["Resources"].values()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    ]
    assert acknowledged, "cdk-nag ran and recorded its acknowledgments"
    for rule in acknowledged:
        assert len(rule["reason"]) >= 40, rule


@pytest.mark.parametrize("stack", ["Rekface", "RekfaceApiKey"])
def test_cfn_lint(synth, stack):
    from cfnlint.api import ManualArgs, lint

    template = synth.outdir / f"{stack}.template.json"
    matches = lint(template.read_text(), config=ManualArgs(regions=["us-east-1"]))
    for m in matches:
        print(m)
    assert [m for m in matches if m.rule.id.startswith("E")] == []


# -- SAM and the sample events -----------------------------------------------------------------


def test_samconfig_and_events_match_the_template(tpl):
    import tomllib
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    sam = tomllib.loads((repo / "samconfig.toml").read_text())
    invoke = sam["default"]["local_invoke"]["parameters"]
    # The local variant (make synth-local): it declares the variables sam-env.json sets.
    assert invoke["template_file"] == "infra/cdk.out/sam-local/Rekface.template.json"
    assert json.loads((repo / invoke["env_vars"]).read_text())["Parameters"]
    routes = {op.route: f"{op.name}Function" for op in OPERATIONS} | {"/": "WireProtocolFunction"}
    for path in sorted((repo / "events").glob("*.json")):
        evt = json.loads(path.read_text())
        if "Records" in evt:  # S3 ObjectCreated: a key under one of the flows' prefixes
            key = evt["Records"][0]["s3"]["object"]["key"]
            assert key.startswith(FLOW_PREFIXES), path.name
            assert "S3EventsFunction" in tpl["Resources"]
        else:  # API Gateway proxy event of a route the API has
            assert evt["httpMethod"] == "POST" and routes[evt["path"]] in tpl["Resources"]
            json.loads(evt["body"])


def test_token_secret_with_cdk_assertions(synth):
    """The same contract through aws_cdk.assertions: a generated secret, and a read grant on it
    (GetSecretValue only) in exactly three policies."""
    from aws_cdk.assertions import Match

    template = synth.template("Rekface")
    template.resource_count_is("AWS::SecretsManager::Secret", 1)
    template.has_resource_properties(
        "AWS::SecretsManager::Secret",
        {"GenerateSecretString": Match.object_like({"ExcludePunctuation": True})},
    )
    (secret_id,) = template.find_resources("AWS::SecretsManager::Secret")
    read = Match.object_like(
        {"Action": "secretsmanager:GetSecretValue", "Resource": {"Ref": secret_id}}
    )
    policies = template.find_resources(
        "AWS::IAM::Policy",
        {"Properties": {"PolicyDocument": {"Statement": Match.array_with([read])}}},
    )
    assert len(policies) == len(PAGING)
    for name in PAGING:
        template.has_resource_properties(
            "AWS::Lambda::Function",
            {
                "FunctionName": Match.absent(),
                "Environment": {
                    "Variables": Match.object_like({SECRET_ARN_ENV: {"Ref": secret_id}})
                },
                "Description": Match.string_like_regexp(f"rekface {name} "),
            },
        )
