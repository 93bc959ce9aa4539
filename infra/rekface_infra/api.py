"""API Gateway REST API: ``POST /<operation>`` per operation and the Rekognition wire protocol at
``POST /``; IAM (SigV4) auth by default, or API keys with a usage plan; throttling; access logs;
errors shaped like Rekognition's so boto3 parses them.

Bodies are not validated by API Gateway: its refusal of a body (BAD_REQUEST_BODY) is one response
type for every reason, and a gateway response template cannot branch (no VTL), so a model that
checked image sizes also turned a body that is not JSON into ImageTooLargeException. The
functions parse and validate the body themselves (SerializationException, the model's limits,
ImageTooLargeException over 5 MB). A body too large for Lambda's 6 MB synchronous payload (or
API Gateway's 10 MB) is refused by API Gateway with 413 (REQUEST_TOO_LARGE), answered here as
ImageTooLargeException: the one oversized thing a Rekognition request carries is an image."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from rekface.spec.operations import OPERATIONS
from rekface_infra.config import StackConfig
from rekface_infra.functions import retention
from rekface_infra.nag import acknowledge

STAGE = "prod"

# Lambda's synchronous payload limit is 6,291,456 bytes for the whole proxy event: base64 images
# up to ~4.5 MB raw fit with the headers and request context (the two images of CompareFaces
# share the budget). Larger images must come as Image.S3Object.
TOO_LARGE_MESSAGE = (
    '"Image too large for API Gateway: Image.Bytes up to about 4.5 MB (2.25 MB each for '
    'CompareFaces); pass larger images (up to 15 MB) as Image.S3Object"'
)

# API Gateway's own refusals, answered as Rekognition/AWS JSON errors (botocore reads __type).
GATEWAY_ERRORS: dict[apigw.ResponseType, tuple[str, str]] = {
    # No body model is attached (see above); should one ever be, a refused body is the client's
    # malformed request, as Rekognition answers a body it cannot read.
    apigw.ResponseType.BAD_REQUEST_BODY: ("400", "SerializationException"),
    # Over Lambda's 6 MB payload or API Gateway's 10 MB: an image sent as Bytes that is too big.
    apigw.ResponseType.REQUEST_TOO_LARGE: ("413", "ImageTooLargeException"),
    apigw.ResponseType.THROTTLED: ("429", "ThrottlingException"),
    apigw.ResponseType.QUOTA_EXCEEDED: ("429", "ThrottlingException"),
    apigw.ResponseType.ACCESS_DENIED: ("403", "AccessDeniedException"),
    apigw.ResponseType.INVALID_API_KEY: ("403", "AccessDeniedException"),
    apigw.ResponseType.UNAUTHORIZED: ("401", "AccessDeniedException"),
    apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN: ("403", "MissingAuthenticationTokenException"),
    apigw.ResponseType.INVALID_SIGNATURE: ("403", "InvalidSignatureException"),
    apigw.ResponseType.EXPIRED_TOKEN: ("403", "ExpiredTokenException"),
    apigw.ResponseType.RESOURCE_NOT_FOUND: ("404", "UnknownOperationException"),
    apigw.ResponseType.INTEGRATION_TIMEOUT: ("504", "InternalServerError"),
    apigw.ResponseType.DEFAULT_5_XX: ("500", "InternalServerError"),
}


class Api(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: StackConfig,
        functions: dict[str, lambda_.IFunction],
        router: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, id)
        iam_auth = config.auth == "iam"
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=retention(config.log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        method_options = (
            apigw.MethodOptions(authorization_type=apigw.AuthorizationType.IAM)
            if iam_auth
            else apigw.MethodOptions(api_key_required=True)
        )
        self.api = apigw.RestApi(
            self,
            "RestApi",
            description="rekface: the Amazon Rekognition face API, self-hosted",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.DESTROY,
            api_key_source_type=apigw.ApiKeySourceType.HEADER,
            default_method_options=method_options,
            deploy_options=apigw.StageOptions(
                stage_name=STAGE,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                # Request bodies hold face images: never copy them into execution logs.
                data_trace_enabled=False,
                tracing_enabled=True,
                metrics_enabled=True,
                throttling_rate_limit=config.throttle_rate,
                throttling_burst_limit=config.throttle_burst,
            ),
        )

        def post(resource: apigw.IResource, fn: lambda_.IFunction) -> apigw.Method:
            return resource.add_method(
                "POST", apigw.LambdaIntegration(fn, proxy=True, allow_test_invoke=False)
            )

        self.methods: dict[str, apigw.Method] = {}
        for op in OPERATIONS:
            resource = self.api.root.add_resource(op.route.lstrip("/"))
            self.methods[op.name] = post(resource, functions[op.name])
        self.methods["/"] = post(self.api.root, router)

        for kind, (status, code) in GATEWAY_ERRORS.items():
            # messageString is already a quoted JSON string.
            message = (
                TOO_LARGE_MESSAGE
                if kind == apigw.ResponseType.REQUEST_TOO_LARGE
                else "$context.error.messageString"
            )
            self.api.add_gateway_response(
                f"{code}{status}{kind.response_type}",
                type=kind,
                status_code=status,
                response_headers={
                    "Content-Type": "'application/x-amz-json-1.1'",
                    "x-amzn-ErrorType": f"'{code}'",
                },
                templates={"application/json": f'{{"__type": "{code}", "Message": {message}}}'},
            )

        if not iam_auth:
            self.api_key = self.api.add_api_key("ApiKey", description="rekface API key")
            plan = self.api.add_usage_plan(
                "UsagePlan",
                throttle=apigw.ThrottleSettings(
                    rate_limit=config.throttle_rate, burst_limit=config.throttle_burst
                ),
                api_stages=[
                    apigw.UsagePlanPerApiStage(api=self.api, stage=self.api.deployment_stage)
                ],
            )
            plan.add_api_key(self.api_key)
            acknowledge(
                self.api,
                "AwsSolutions-APIG4",
                "API-key mode was chosen at deploy time (-c auth=api_key): every method requires "
                "the x-api-key of the usage plan instead of SigV4; IAM auth is the default.",
            )
        acknowledge(
            self.api,
            "AwsSolutions-APIG2",
            "Request bodies are validated by the functions against the botocore model, with "
            "Rekognition's own error codes; API Gateway's validator answers every refusal with one "
            "response type (BAD_REQUEST_BODY), which cannot tell a malformed body from an "
            "oversized image. Sizes are still bounded: 413 beyond Lambda's 6 MB payload.",
        )
        acknowledge(
            self.api,
            "AwsSolutions-COG4",
            "Clients are AWS SDKs calling a machine-to-machine API: SigV4 (IAM) is the "
            "authoriser, as for Rekognition itself; there are no Cognito user pools here.",
        )
        acknowledge(
            self.api,
            "AwsSolutions-APIG3",
            "WAF is optional hardening with a monthly cost; the API is authenticated, "
            "throttled per stage (and per key) and size-limited (413). Attach a web ACL "
            "to the stage if the deployment needs one.",
        )
        acknowledge(
            self.api,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
            "API Gateway's account-level CloudWatch role: AWS's managed policy is the documented "
            "way to let API Gateway write access and execution logs.",
        )

    @property
    def url(self) -> str:
        return self.api.url
