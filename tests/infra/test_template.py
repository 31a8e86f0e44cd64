"""Offline validation of infra/template.yaml: lint, SAM transform, lint again, and the rules
the deployment relies on (handlers, settings names, IAM scope, events, URL permissions).

cfn-lint skips dependency cycles that involve SAM types, so the translated template is
linted too: that is where an S3-event function whose policy refers to its bucket shows up.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.logs import capture_logs

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
FUNCTIONS_DIR = ROOT / "functions"

# logical id -> function directory; the deployed set (DESIGN.md "Functions")
FUNCTIONS = {
    "GenerateFunction": "generate",
    "StatusFunction": "status",
    "AccountFunction": "account",
    "PlisioWebhookFunction": "plisio_webhook",
    "PrivacyExportFunction": "privacy_export",
    "VideoStoredFunction": "video_stored",
    "CleanupFunction": "cleanup",
}
HTTP_FUNCTIONS = {"generate", "status", "account", "plisio_webhook", "privacy_export"}
ASYNC_FUNCTIONS = {"video_stored", "cleanup", "privacy_export"}

# Actions AWS offers no resource-level permissions for: "Resource: *" is the only option.
STAR_RESOURCE_ALLOWED = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "cloudwatch:PutMetricData",
}
# Environment variables that are not Settings fields but are read by izgens.config itself.
EXTRA_ENV = {"IZGENS_SECRETS_ARN"}

PARAMETERS = {
    "FrontendOrigin": "https://app.example.com",
    "SupabaseUrl": "https://abcdefghij.supabase.co",
    "SecretsArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:izgens-AbCdEf",
}
SUPABASE_POOLER_CLIENTS_NANO = 200


class _OfflineManagedPolicies:
    """Stands in for samtranslator's ManagedPolicyLoader: never calls IAM."""

    def load(self) -> dict[str, str]:
        return {}


def _lint(text: str) -> list[Any]:
    from cfnlint.api import ManualArgs, lint

    return lint(text, config=ManualArgs(regions=["us-east-1"]))


def _fmt(matches: list[Any]) -> str:
    return "\n".join(str(m) for m in matches)


@pytest.fixture(scope="module")
def template_text() -> str:
    return TEMPLATE.read_text()


@pytest.fixture(scope="module")
def sam(template_text: str) -> dict[str, Any]:
    from cfnlint.decode import decode_str

    tmpl, errors = decode_str(template_text)
    assert not errors, _fmt(errors)
    return tmpl


@pytest.fixture(scope="module")
def translated(sam: dict[str, Any]) -> dict[str, Any]:
    from samtranslator.public.exceptions import InvalidDocumentException
    from samtranslator.translator.transform import transform

    tmpl = copy.deepcopy(sam)
    for resource in tmpl["Resources"].values():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            value = props.get(key)
            if isinstance(value, str) and not value.startswith("s3://"):
                props[key] = "s3://offline-artifacts/" + value.strip("./").strip("/") + ".zip"
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # else NoRegionFound, offline
            return transform(tmpl, dict(PARAMETERS), _OfflineManagedPolicies())
    except InvalidDocumentException as exc:
        pytest.fail("SAM transform failed: " + "; ".join(c.message for c in exc.causes))


def _resources(tmpl: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in tmpl["Resources"].items() if v["Type"] == kind}


def _walk(node: Any):
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _statements(policy_document: Any):
    """Every statement of a policy document, through both branches of Fn::If."""
    statements = policy_document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    for item in statements:
        if isinstance(item, dict) and "Fn::If" in item:
            for branch in item["Fn::If"][1:]:
                if isinstance(branch, dict) and "Ref" not in branch:
                    yield branch
        elif isinstance(item, dict):
            yield item


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _settings_env_names() -> set[str]:
    from izgens.config import Settings

    names = set(EXTRA_ENV)
    for name, field in Settings.model_fields.items():
        names.add(name.upper())
        if field.alias:
            names.add(field.alias.upper())
    return names


def _env(translated: dict[str, Any], logical_id: str) -> dict[str, Any]:
    props = translated["Resources"][logical_id]["Properties"]
    return props.get("Environment", {}).get("Variables", {})


def _existing_function_dirs() -> list[str]:
    return sorted(
        p.name for p in FUNCTIONS_DIR.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
    )


def _defines_handler(module: Path) -> bool:
    for node in ast.parse(module.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "handler":
            return True
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign)
            else []
        )
        if any(isinstance(t, ast.Name) and t.id == "handler" for t in targets):
            return True
    return False


# ------------------------------------------------------------------------------------------


def test_sam_template_lints_clean(template_text: str) -> None:
    matches = _lint(template_text)
    assert not matches, _fmt(matches)


def test_translated_template_lints_clean(translated: dict[str, Any]) -> None:
    # catches dependency cycles (E3004) that cfn-lint does not look for in SAM resources
    matches = _lint(json.dumps(translated))
    assert not matches, _fmt(matches)


def test_every_listed_function_has_a_resource(sam: dict[str, Any]) -> None:
    functions = _resources(sam, "AWS::Serverless::Function")
    assert set(FUNCTIONS) <= set(functions)
    for logical_id, name in FUNCTIONS.items():
        code_uri = functions[logical_id]["Properties"]["CodeUri"]
        assert code_uri.rstrip("/") == f"../functions/{name}", (logical_id, code_uri)


def test_every_function_directory_is_deployed(
    sam: dict[str, Any], translated: dict[str, Any]
) -> None:
    by_dir = {
        props["CodeUri"].rstrip("/").rsplit("/", 1)[-1]: logical_id
        for logical_id, resource in _resources(sam, "AWS::Serverless::Function").items()
        for props in [resource["Properties"]]
    }
    for name in _existing_function_dirs():
        assert name in by_dir, f"functions/{name}/ has no resource in infra/template.yaml"
        code_uri = sam["Resources"][by_dir[name]]["Properties"]["CodeUri"]
        assert (TEMPLATE.parent / code_uri).resolve() == (FUNCTIONS_DIR / name).resolve()
        handler = translated["Resources"][by_dir[name]]["Properties"]["Handler"]
        assert handler == "handler.handler", (name, handler)
        module = FUNCTIONS_DIR / name / "handler.py"
        if module.exists():
            assert _defines_handler(module), f"{module} defines no module-level `handler`"


def test_runtime_architecture_snapstart(translated: dict[str, Any]) -> None:
    aliases = _resources(translated, "AWS::Lambda::Alias")
    for logical_id in FUNCTIONS:
        props = translated["Resources"][logical_id]["Properties"]
        assert props["Runtime"] == "python3.12"
        assert props["Architectures"] == ["arm64"]
        assert props["SnapStart"] == {"ApplyOn": "PublishedVersions"}
        assert f"{logical_id}Aliaslive" in aliases
        assert props["LoggingConfig"]["LogFormat"] == "JSON"


def test_env_vars_are_known_settings(translated: dict[str, Any]) -> None:
    known = _settings_env_names()
    for logical_id in FUNCTIONS:
        unknown = set(_env(translated, logical_id)) - known
        assert not unknown, f"{logical_id} sets env vars no setting reads: {sorted(unknown)}"


def test_secrets_are_never_inlined(translated: dict[str, Any]) -> None:
    from izgens.config import SECRET_FIELDS

    forbidden = {name.upper() for name in SECRET_FIELDS} | {"DATABASE_URL"}
    for logical_id in FUNCTIONS:
        env = _env(translated, logical_id)
        assert not forbidden & set(env), (logical_id, sorted(forbidden & set(env)))
        assert env["IZGENS_SECRETS_ARN"], logical_id
        assert env["IZGENS_ENV"] == "prod"


def _public_base_urls_default(value: Any) -> str:
    """The Function-URL branch of PUBLIC_BASE_URLS (the other one is the override)."""
    assert "Fn::If" in value, value
    condition, override, default = value["Fn::If"]
    assert condition == "HasPublicBaseUrls" and override == {"Ref": "PublicBaseUrls"}
    return default["Fn::Sub"] if isinstance(default, dict) else default


def test_public_base_urls_parse_and_never_point_at_self(translated: dict[str, Any]) -> None:
    from izgens.config import Settings

    for logical_id, name in FUNCTIONS.items():
        value = _env(translated, logical_id).get("PUBLIC_BASE_URLS")
        if value is None:
            continue
        text = _public_base_urls_default(value)
        refs = re.findall(r"\$\{(\w+)Url\.FunctionUrl\}", text)
        assert f"{logical_id}" not in refs, f"{name} refers to its own URL (a cycle)"
        resolved = re.sub(
            r"\$\{(\w+)Url\.FunctionUrl\}", r"https://\1.lambda-url.us-east-1.on.aws/", text
        )
        urls = Settings(public_base_urls=resolved).public_base_urls
        for target in urls:
            assert target in HTTP_FUNCTIONS and target != name, (name, target)
            assert not urls[target].endswith("/"), urls[target]


def _packager():
    sys.path.insert(0, str(ROOT / "infra"))
    try:
        import package  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(ROOT / "infra"))
    return package


def test_functions_get_the_public_urls_their_code_asks_for(translated: dict[str, Any]) -> None:
    """Every `public_url("x")` / `public_base_urls.get("x")` in the code a function reaches
    (its modules and the izgens modules they import, as infra/package.py finds them) needs x
    in that function's PUBLIC_BASE_URLS. Its own URL is the exception: it cannot be wired
    without a cycle and comes from the PublicBaseUrls parameter (docs/deploy.md, step 4)."""
    package = _packager()
    asks = re.compile(r"(?:public_url\(|public_base_urls\.get\()\s*[\"'](\w+)[\"']")
    for logical_id, name in FUNCTIONS.items():
        if not (FUNCTIONS_DIR / name / "handler.py").is_file():
            continue
        reached = package.third_party_imports(name)[2]
        wanted = {target for path in reached for target in asks.findall(path.read_text())}
        wanted.discard(name)
        if not wanted:
            continue
        value = _env(translated, logical_id).get("PUBLIC_BASE_URLS")
        assert value is not None, f"{name} needs PUBLIC_BASE_URLS for {sorted(wanted)}"
        have = set(re.findall(r"(\w+)=", _public_base_urls_default(value)))
        assert wanted <= have, f"{name} lacks public URLs for {sorted(wanted - have)}"


def test_no_star_resources_outside_the_allowlist(translated: dict[str, Any]) -> None:
    checked = 0
    for logical_id, role in _resources(translated, "AWS::IAM::Role").items():
        props = role["Properties"]
        # every grant must be visible (and checkable) here: no managed policies
        assert not props.get("ManagedPolicyArns"), (logical_id, props.get("ManagedPolicyArns"))
        for policy in props.get("Policies", []):
            for statement in _statements(policy["PolicyDocument"]):
                checked += 1
                actions = set(_as_list(statement["Action"]))
                assert not any(a == "*" or a.endswith(":*") for a in actions), (
                    logical_id,
                    actions,
                )
                if "*" in _as_list(statement.get("Resource")):
                    extra = actions - STAR_RESOURCE_ALLOWED
                    assert not extra, f"{logical_id}: Resource '*' for {sorted(extra)}"
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for logical_id, policy in _resources(translated, kind).items():
            for statement in _statements(policy["Properties"]["PolicyDocument"]):
                checked += 1
                if "*" in _as_list(statement.get("Resource")):
                    extra = set(_as_list(statement["Action"])) - STAR_RESOURCE_ALLOWED
                    assert not extra, f"{logical_id}: Resource '*' for {sorted(extra)}"
    assert checked > len(FUNCTIONS)


def test_each_function_has_its_own_role(translated: dict[str, Any]) -> None:
    roles = set()
    for logical_id in FUNCTIONS:
        role = translated["Resources"][logical_id]["Properties"]["Role"]
        assert role == {"Fn::GetAtt": [logical_id.replace("Function", "Role"), "Arn"]}
        roles.add(role["Fn::GetAtt"][0])
    assert len(roles) == len(FUNCTIONS)


def _s3_grants(translated: dict[str, Any], role: str) -> dict[str, set[str]]:
    """action -> object key patterns (or "<bucket>") the role may use it on."""
    grants: dict[str, set[str]] = {}
    for policy in translated["Resources"][role]["Properties"]["Policies"]:
        for statement in _statements(policy["PolicyDocument"]):
            for resource in _as_list(statement.get("Resource")):
                sub = resource.get("Fn::Sub") if isinstance(resource, dict) else None
                if not isinstance(sub, str) or ":s3:::" not in sub:
                    continue
                assert sub.startswith(
                    "arn:${AWS::Partition}:s3:::${AWS::StackName}-${AWS::AccountId}-media"
                ), sub
                target = sub.split("-media", 1)[1].lstrip("/") or "<bucket>"
                for action in _as_list(statement["Action"]):
                    grants.setdefault(action, set()).add(target)
    return grants


def test_s3_grants_follow_the_key_layout(translated: dict[str, Any]) -> None:
    assert _s3_grants(translated, "AccountRole") == {}
    assert _s3_grants(translated, "PlisioWebhookRole") == {}
    generate = _s3_grants(translated, "GenerateRole")
    assert generate["s3:PutObject"] == {"references/*"}
    assert "videos/*" not in set().union(*generate.values())
    status = _s3_grants(translated, "StatusRole")
    assert status["s3:DeleteObject"] == {"videos/*"}
    assert status["s3:PutObject"] == {"videos/*"}
    export = _s3_grants(translated, "PrivacyExportRole")
    assert export["s3:PutObject"] == {"exports/*"}
    stored = _s3_grants(translated, "VideoStoredRole")
    assert stored["s3:GetObject"] == stored["s3:DeleteObject"] == {"videos/*"}
    assert "s3:PutObject" not in stored
    cleanup = _s3_grants(translated, "CleanupRole")
    assert cleanup["s3:DeleteObject"] == {"references/*", "videos/*", "exports/*"}
    assert cleanup["s3:ListBucket"] == {"<bucket>"}
    assert cleanup["s3:PutObject"] == {"videos/*", "exports/*"}  # reconcile, pending exports


def test_policies_name_the_bucket_instead_of_referring_to_it(
    translated: dict[str, Any],
) -> None:
    for logical_id, role in _resources(translated, "AWS::IAM::Role").items():
        for node in _walk(role):
            if isinstance(node, dict):
                assert node.get("Ref") != "MediaBucket", logical_id
                assert node.get("Fn::GetAtt", [None])[0] != "MediaBucket", logical_id


def test_bucket_is_private_encrypted_and_expires_temporary_objects(
    sam: dict[str, Any],
) -> None:
    props = sam["Resources"]["MediaBucket"]["Properties"]
    assert props["BucketName"] == {"Fn::Sub": "${AWS::StackName}-${AWS::AccountId}-media"}
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    rules = props["LifecycleConfiguration"]["Rules"]
    prefixes = {r.get("Prefix"): r for r in rules if r.get("ExpirationInDays")}
    assert set(prefixes) == {"references/", "exports/"}
    assert any("AbortIncompleteMultipartUpload" in r for r in rules)
    assert sam["Parameters"]["ExportExpirationDays"]["MaxValue"] <= 2
    # lifecycle is the second line of defence: it must not fire before the settings do
    assert (
        sam["Parameters"]["ReferenceExpirationDays"]["Default"] * 24
        > sam["Parameters"]["ReferenceRetentionHours"]["Default"]
    )
    assert (
        sam["Parameters"]["ExportExpirationDays"]["Default"] * 24
        > sam["Parameters"]["ExportTtlHours"]["Default"]
    )


def test_video_stored_event_prefix_matches_the_key_layout(
    sam: dict[str, Any], translated: dict[str, Any]
) -> None:
    from izgens.storage import Storage

    events = sam["Resources"]["VideoStoredFunction"]["Properties"]["Events"]
    (event,) = events.values()
    assert event["Type"] == "S3"
    assert event["Properties"]["Bucket"] == {"Ref": "MediaBucket"}
    rules = event["Properties"]["Filter"]["S3Key"]["Rules"]
    assert rules == [{"Name": "prefix", "Value": "videos/"}]

    notifications = translated["Resources"]["MediaBucket"]["Properties"][
        "NotificationConfiguration"
    ]["LambdaConfigurations"]
    assert len(notifications) == 1
    assert notifications[0]["Filter"]["S3Key"]["Rules"] == rules
    assert notifications[0]["Function"] == {"Ref": "VideoStoredFunctionAliaslive"}

    user, generation = uuid.uuid4(), uuid.uuid4()
    key = Storage.video_key(user, generation)
    assert key.startswith(rules[0]["Value"])
    assert Storage.parse_video_key(key) == (str(user), str(generation))


def test_function_urls_have_both_public_permissions(translated: dict[str, Any]) -> None:
    permissions = _resources(translated, "AWS::Lambda::Permission")
    urls = _resources(translated, "AWS::Lambda::Url")
    for logical_id, name in FUNCTIONS.items():
        alias = {"Ref": f"{logical_id}Aliaslive"}
        mine = [
            p["Properties"]
            for p in permissions.values()
            if p["Properties"]["FunctionName"] == alias
        ]
        url_invoke = [
            p
            for p in mine
            if p["Action"] == "lambda:InvokeFunctionUrl"
            and p.get("FunctionUrlAuthType") == "NONE"
            and p["Principal"] == "*"
        ]
        invoke_via_url = [
            p
            for p in mine
            if p["Action"] == "lambda:InvokeFunction"
            and p.get("InvokedViaFunctionUrl") is True
            and p["Principal"] == "*"
        ]
        if name in HTTP_FUNCTIONS:
            url = urls[f"{logical_id}Url"]["Properties"]
            assert url["AuthType"] == "NONE" and url["TargetFunctionArn"] == alias
            assert url_invoke and invoke_via_url, f"{name}: Function URL permissions missing"
            if name != "plisio_webhook":
                assert url["Cors"]["AllowOrigins"] == [{"Ref": "FrontendOrigin"}]
        else:
            assert f"{logical_id}Url" not in urls and not url_invoke and not invoke_via_url


def test_async_functions_send_failures_to_the_queue(translated: dict[str, Any]) -> None:
    configs = _resources(translated, "AWS::Lambda::EventInvokeConfig")
    for logical_id, name in FUNCTIONS.items():
        mine = [
            c["Properties"]
            for c in configs.values()
            if c["Properties"]["FunctionName"] == {"Ref": logical_id}
        ]
        if name not in ASYNC_FUNCTIONS:
            assert not mine, name
            continue
        (config,) = mine
        assert config["Qualifier"] == "live"
        target = config["DestinationConfig"]["OnFailure"]["Destination"]
        assert target == {"Fn::GetAtt": ["AsyncFailureQueue", "Arn"]}
        role = logical_id.replace("Function", "Role")
        grants = [
            s
            for p in translated["Resources"][role]["Properties"]["Policies"]
            for s in _statements(p["PolicyDocument"])
            if "sqs:SendMessage" in _as_list(s["Action"])
        ]
        assert grants and grants[0]["Resource"] == target, name


def test_cleanup_runs_on_a_schedule_one_at_a_time(
    sam: dict[str, Any], translated: dict[str, Any]
) -> None:
    props = sam["Resources"]["CleanupFunction"]["Properties"]
    (event,) = props["Events"].values()
    assert event["Type"] == "Schedule"
    assert event["Properties"]["Schedule"] == {"Ref": "CleanupSchedule"}
    assert sam["Parameters"]["CleanupSchedule"]["Default"] == "rate(5 minutes)"
    assert props["ReservedConcurrentExecutions"] == 1
    assert props["Timeout"] < 300  # finishes before the next run starts
    rules = _resources(translated, "AWS::Events::Rule")
    (rule,) = rules.values()
    assert rule["Properties"]["Targets"][0]["Arn"] == {"Ref": "CleanupFunctionAliaslive"}


def test_reserved_concurrency_fits_the_pooler_budget(sam: dict[str, Any]) -> None:
    params = sam["Parameters"]
    generate = sam["Resources"]["GenerateFunction"]["Properties"]
    assert generate["ReservedConcurrentExecutions"]["Fn::If"][1] == {
        "Ref": "GenerateReservedConcurrency"
    }
    total = 1  # cleanup
    for logical_id in FUNCTIONS:
        param = logical_id.replace("Function", "ReservedConcurrency")
        if param in params:
            assert params[param]["Default"] > 0
            total += params[param]["Default"]
    # each warm container holds one pooler connection; leave half for everything else
    assert total <= SUPABASE_POOLER_CLIENTS_NANO // 2, total


def test_log_groups_have_retention_and_are_used(sam: dict[str, Any]) -> None:
    for logical_id, name in FUNCTIONS.items():
        props = sam["Resources"][logical_id]["Properties"]
        group = props["LoggingConfig"]["LogGroup"]["Ref"]
        group_props = sam["Resources"][group]["Properties"]
        assert group_props["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        assert group_props["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{AWS::StackName}}-{name}"}
        assert props["FunctionName"] == {"Fn::Sub": f"${{AWS::StackName}}-{name}"}


def test_alarms_cover_every_function(sam: dict[str, Any]) -> None:
    alarms = _resources(sam, "AWS::CloudWatch::Alarm")
    by_function: dict[str, dict[str, dict[str, Any]]] = {}
    for alarm in alarms.values():
        props = alarm["Properties"]
        for dim in props.get("Dimensions", []):
            if dim["Name"] == "FunctionName":
                by_function.setdefault(dim["Value"]["Ref"], {})[props["MetricName"]] = props
        assert props["AlarmActions"]["Fn::If"][0] == "HasAlarmTopic"
    for logical_id, name in FUNCTIONS.items():
        metrics = by_function.get(logical_id, {})
        assert {"Errors", "Throttles", "Duration"} <= set(metrics), (name, sorted(metrics))
        if name in HTTP_FUNCTIONS:
            assert "Url5xxCount" in metrics, name
        timeout_ms = sam["Resources"][logical_id]["Properties"]["Timeout"] * 1000
        assert metrics["Duration"]["Threshold"] == int(timeout_ms * 0.8), name
    queue_alarms = [
        a
        for a in alarms.values()
        if a["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    ]
    assert queue_alarms


def test_ledger_mismatch_metric_matches_what_cleanup_logs(sam: dict[str, Any]) -> None:
    import logging

    from izgens.logs import log_event

    metric_filter = sam["Resources"]["LedgerMismatchMetricFilter"]["Properties"]
    assert metric_filter["LogGroupName"] == {"Ref": "CleanupLogGroup"}
    pattern = metric_filter["FilterPattern"]
    assert '$.job = "ledger_check"' in pattern
    (transformation,) = metric_filter["MetricTransformations"]
    assert transformation["MetricValue"] == "$.mismatches"
    alarm = sam["Resources"]["LedgerMismatchAlarm"]["Properties"]
    assert alarm["MetricName"] == transformation["MetricName"]
    assert alarm["Namespace"] == transformation["MetricNamespace"]

    # the contract: log_event(..., job="ledger_check", mismatches=N) puts both keys at the
    # top level of the JSON line the filter reads
    logger = logging.getLogger("izgens.tests.ledger")
    logger.propagate = False
    with capture_logs(logger.name, logging.INFO) as logged:
        log_event(logger, "ledger check", job="ledger_check", mismatches=3)
    line = json.loads(logged.lines()[0])
    assert line["job"] == "ledger_check" and line["mismatches"] == 3


def test_underpriced_generation_metric_matches_what_the_margin_check_logs(
    sam: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from izgens.logs import JsonFormatter, log_event

    metric_filter = sam["Resources"]["UnderpricedGenerationMetricFilter"]["Properties"]
    assert metric_filter["LogGroupName"] == {"Ref": "CleanupLogGroup"}
    assert metric_filter["FilterPattern"] == '{ $.msg = "underpriced generation" }'
    (transformation,) = metric_filter["MetricTransformations"]
    alarm = sam["Resources"]["UnderpricedGenerationAlarm"]["Properties"]
    assert alarm["MetricName"] == transformation["MetricName"]
    assert alarm["Namespace"] == transformation["MetricNamespace"]
    assert (alarm["Statistic"], alarm["Threshold"]) == ("Sum", 0)
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"

    # the line izgens.margins.check_margins writes, as the formatter renders it
    logger = logging.getLogger("izgens.margins")
    with caplog.at_level(logging.INFO, logger="izgens.margins"):
        log_event(logger, "underpriced generation", logging.WARNING, generation="g")
    line = json.loads(JsonFormatter().format(caplog.records[-1]))
    assert line["msg"] == "underpriced generation" and line["generation"] == "g"


def test_only_privacy_export_may_invoke_a_function_and_only_its_own_live_alias(
    translated: dict[str, Any],
) -> None:
    """The export hand-off (izgens.export_jobs): an asynchronous invocation of the
    function's own `live` alias, the one EXPORT_BUILDER_FUNCTION names, nothing wider."""
    granted: dict[str, list[Any]] = {}
    for logical_id, role in _resources(translated, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for statement in _statements(policy["PolicyDocument"]):
                if any(a.startswith("lambda:") for a in _as_list(statement["Action"])):
                    assert _as_list(statement["Action"]) == ["lambda:InvokeFunction"]
                    granted.setdefault(logical_id, []).extend(_as_list(statement["Resource"]))
    alias = "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AWS::StackName}-privacy_export:live"
    assert granted == {"PrivacyExportRole": [{"Fn::Sub": alias}]}
    function = translated["Resources"]["PrivacyExportFunction"]["Properties"]
    assert function["FunctionName"] == {"Fn::Sub": "${AWS::StackName}-privacy_export"}
    env = function["Environment"]["Variables"]
    assert env["EXPORT_BUILDER_FUNCTION"] == {"Fn::Sub": "${AWS::StackName}-privacy_export:live"}
