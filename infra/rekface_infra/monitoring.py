"""Alarms on what a user of the API feels (5xx, p99 latency, throttling) and on the S3 flows
(errors, dead letters), published to one SNS topic."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from rekface_infra.config import StackConfig

PERIOD = Duration.minutes(5)


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: StackConfig,
        api: apigw.RestApi,
        functions: dict[str, lambda_.IFunction],
        ingest_function: lambda_.IFunction,
        dead_letters: sqs.IQueue,
    ) -> None:
        super().__init__(scope, id)
        self.topic = sns.Topic(
            self,
            "AlarmTopic",
            display_name="rekface alarms",
            master_key=kms.Alias.from_alias_name(self, "SnsKey", "alias/aws/sns"),
            enforce_ssl=True,
        )
        if config.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
        self.alarms: dict[str, cloudwatch.Alarm] = {}

        def alarm(
            name: str, metric: cloudwatch.IMetric, threshold: float, what: str, periods: int = 1
        ) -> None:
            a = cloudwatch.Alarm(
                self,
                name,
                metric=metric,
                threshold=threshold,
                evaluation_periods=periods,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=what,
            )
            a.add_alarm_action(actions.SnsAction(self.topic))
            self.alarms[name] = a

        alarm(
            "Api5xx",
            api.metric_server_error(period=PERIOD, statistic="Sum"),
            1,
            "rekface API answered 5xx (server faults: crashes, timeouts, throttled Lambdas)",
        )
        alarm(
            "ApiLatencyP99",
            api.metric_latency(period=PERIOD, statistic="p99"),
            config.latency_alarm_ms,
            f"rekface API p99 latency >= {config.latency_alarm_ms} ms for 15 minutes",
            periods=3,
        )
        for name, fn in functions.items():
            alarm(
                f"{name}Throttles",
                fn.metric_throttles(period=PERIOD, statistic="Sum"),
                1,
                f"rekface {name} Lambda throttled (concurrency limit reached)",
            )
        alarm(
            "S3EventsErrors",
            ingest_function.metric_errors(period=PERIOD, statistic="Sum"),
            1,
            "rekface S3 flows failed on a server-side fault (Lambda retries, then the DLQ)",
        )
        alarm(
            "DeadLetters",
            dead_letters.metric_approximate_number_of_messages_visible(
                period=PERIOD, statistic="Maximum"
            ),
            1,
            "rekface S3 events gave up after retries: see the dead-letter queue",
        )
