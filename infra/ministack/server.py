"""Starts MiniStack (PyPI `ministack`, pinned in infra/ministack/requirements.txt) with
what its CloudFormation (1.5.33) lacks for our template: two resource types and alarms on
metric math.

    .venv-ministack/bin/python infra/ministack/server.py     (environment as for `ministack`)

SAM turns the state machine's `AutoPublishAlias: live` into an
AWS::StepFunctions::StateMachineVersion and an AWS::StepFunctions::StateMachineAlias (with
a DeploymentPreference). MiniStack's Step Functions has versions and aliases
(PublishStateMachineVersion, CreateStateMachineAlias), its CloudFormation has no handler
for either type and refuses the whole template ("Unrecognized resource types"). The
handlers below create them through MiniStack's own Step Functions API, as the AWS
handlers do, so the template deploys unchanged. One difference, on purpose: an alias
with a DeploymentPreference is moved to the new version at once (the first deploy does
that on AWS too; a later canary shift and its alarm rollback are not emulated).

MiniStack's AWS::CloudWatch::Alarm refuses `Metrics` (metric math), which our release
alarm ReleaseStepErrorsAlarm uses. Its alarms are never evaluated anyway (they stay
INSUFFICIENT_DATA), so such an alarm is recorded as it is declared, with its Metrics.

Its Step Functions ignores a Task's `TimeoutSecondsPath`: a `.waitForTaskToken` task then
waits 99999 s for its callback (our AwaitDelivery takes its timeout from the execution
input, config.delivery_timeout_seconds, so a lost parcel was never given up on). The
task below gets the `TimeoutSeconds` its path names in the state's input, as on AWS.

`!Ref` of an AWS::SecretsManager::Secret is the secret's ARN on AWS; MiniStack gives its
name. Our functions' policies grant secretsmanager:GetSecretValue on `!Ref <Secret>`, so
with MiniStack's name no policy matched the ARN it checks and every partner call was
denied. The secret handlers below make the ARN the physical id (and so what Ref gives),
as on AWS.

Its AWS::StepFunctions::StateMachine passes a definition read from DefinitionS3Location
to Step Functions as the text it is, which must be JSON there. AWS's handler accepts a
JSON or YAML file (our definition is infra/statemachine/order-workflow.asl.yaml); the
definition below is parsed as YAML (JSON is YAML) and handed on as JSON.

A REST API on AWS hands its Lambda proxy the request path as the caller sent it,
percent-encoding included (`path`, and the `pathParameters` cut from it); only an HTTP
API decodes it. MiniStack's REST APIs matched and delivered the server's decoded path, so
`/orders/%14x` reached the orders API as `/orders/\x14x`, which is no URI at all, and was
answered `404 route_not_found` instead of `404 order_not_found`. Below, a REST API's
request is matched and delivered with the path as sent, as on AWS.

Its EventBridge stamps every event with the time of the PutEvents call, ignoring an
entry's `Time`. On AWS an entry's `Time` is its event's `time` (the call's time only when
none is given); our events carry the moment the order changed, and a reconciler pass that
parks many orders publishes some of them seconds later. Below, an entry's `Time` is its
event's time, as on AWS.
"""

import json
import threading

import yaml

from ministack import app
from ministack.services import apigateway_v1 as rest_apis
from ministack.services import eventbridge
from ministack.services import secretsmanager as secrets_manager
from ministack.services import stepfunctions as sfn
from ministack.services.cloudformation import provisioners


def _answer(response, operation):
    """The JSON body of a MiniStack Step Functions answer; a refusal becomes the
    ValueError whose message CloudFormation shows as the resource's status reason."""
    status, _headers, body = response
    payload = json.loads(body or b"{}")
    if status >= 400:
        code = payload.get("__type", "Error")
        message = payload.get("message") or payload.get("Message") or ""
        raise ValueError(f"{operation}: {code}: {message}")
    return payload


def _version_attributes(arn):
    return {"Arn": arn}


def _version_create(logical_id, props, stack_name):
    request = {"stateMachineArn": props.get("StateMachineArn")}
    if props.get("StateMachineRevisionId"):
        request["revisionId"] = props["StateMachineRevisionId"]
    if props.get("Description"):
        request["description"] = props["Description"]
    arn = _answer(sfn._publish_state_machine_version(request), "PublishStateMachineVersion")[
        "stateMachineVersionArn"
    ]
    return arn, _version_attributes(arn)


def _version_update(physical_id, old_props, new_props, stack_name, logical_id=None):
    # Every property of a version requires replacement: publish a new one (the old one
    # stays, as SAM's DeletionPolicy: Retain keeps it on AWS).
    return _version_create(logical_id or physical_id, new_props, stack_name)


def _version_delete(physical_id, props):
    sfn._delete_state_machine_version({"stateMachineVersionArn": physical_id})


def _routing(props):
    """The alias's routing: RoutingConfiguration as given, or all new executions on the
    DeploymentPreference's version."""
    if props.get("RoutingConfiguration"):
        return [
            {"stateMachineVersionArn": r["StateMachineVersionArn"], "weight": int(r["Weight"])}
            for r in props["RoutingConfiguration"]
        ]
    preference = props.get("DeploymentPreference") or {}
    version = preference.get("StateMachineVersionArn")
    if not version:
        raise ValueError("AWS::StepFunctions::StateMachineAlias needs RoutingConfiguration or DeploymentPreference")
    return [{"stateMachineVersionArn": version, "weight": 100}]


def _alias_create(logical_id, props, stack_name):
    request = {"name": props.get("Name") or logical_id, "routingConfiguration": _routing(props)}
    if props.get("Description"):
        request["description"] = props["Description"]
    arn = _answer(sfn._create_state_machine_alias(request), "CreateStateMachineAlias")["stateMachineAliasArn"]
    return arn, {"Arn": arn}


def _alias_update(physical_id, old_props, new_props, stack_name, logical_id=None):
    request = {"stateMachineAliasArn": physical_id, "routingConfiguration": _routing(new_props)}
    if "Description" in new_props:
        request["description"] = new_props["Description"]
    _answer(sfn._update_state_machine_alias(request), "UpdateStateMachineAlias")
    return physical_id, {"Arn": physical_id}


def _alias_delete(physical_id, props):
    sfn._delete_state_machine_alias({"stateMachineAliasArn": physical_id})


_metric_alarm_record = provisioners._cw_metric_alarm_record


def _alarm_record(name, props):
    """The alarm MiniStack records, also for one on metric math (kept with its Metrics)."""
    if not props.get("Metrics"):
        return _metric_alarm_record(name, props)
    record = _metric_alarm_record(name, {**props, "Metrics": None, "MetricName": "-", "Namespace": "-"})
    for key in ("MetricName", "Namespace", "Statistic", "Period", "Dimensions"):
        record.pop(key, None)
    record["Metrics"] = props["Metrics"]
    return record


provisioners._cw_metric_alarm_record = _alarm_record

def _secret_name(physical_id):
    """The name MiniStack keys a secret by, from the ARN that is its physical id here."""
    for name, secret in secrets_manager._secrets.items():
        if secret.get("ARN") == physical_id:
            return name
    return physical_id


_secret_handler = dict(provisioners._RESOURCE_HANDLERS["AWS::SecretsManager::Secret"])


def _secret_create(logical_id, props, stack_name):
    _name, attributes = _secret_handler["create"](logical_id, props, stack_name)
    return attributes["Arn"], attributes


def _secret_update(physical_id, old_props, new_props, stack_name, logical_id=None):
    _name, attributes = _secret_handler["update"](
        _secret_name(physical_id), old_props, new_props, stack_name, logical_id
    )
    return attributes["Arn"], attributes


def _secret_delete(physical_id, props):
    _secret_handler["delete"](_secret_name(physical_id), props)


provisioners._RESOURCE_HANDLERS["AWS::SecretsManager::Secret"] = {
    **_secret_handler,
    "create": _secret_create,
    "update": _secret_update,
    "delete": _secret_delete,
}

_execute_task = sfn._execute_task


def _task_with_timeout_path(state_def, raw_input, execution, ctx):
    """A Task state, its TimeoutSecondsPath resolved against the state's input."""
    if "TimeoutSecondsPath" in state_def and "TimeoutSeconds" not in state_def:
        seconds = sfn._resolve_path_or_ctx(state_def["TimeoutSecondsPath"], raw_input, ctx)
        if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and seconds > 0:
            state_def = {**state_def, "TimeoutSeconds": int(seconds)}
    return _execute_task(state_def, raw_input, execution, ctx)


sfn._execute_task = _task_with_timeout_path

_sfn_definition = provisioners._sfn_definition


def _definition_as_json(props):
    """The template's definition, from JSON or YAML text, as the JSON Step Functions takes."""
    text = _sfn_definition(props)
    try:
        json.loads(text)
        return text
    except ValueError:
        return json.dumps(yaml.safe_load(text))


provisioners._sfn_definition = _definition_as_json

for resource_type, handler in {
    "AWS::StepFunctions::StateMachineVersion": {
        "create": _version_create,
        "update": _version_update,
        "update_with_logical_id": True,
        "delete": _version_delete,
    },
    "AWS::StepFunctions::StateMachineAlias": {
        "create": _alias_create,
        "update": _alias_update,
        "update_with_logical_id": True,
        "delete": _alias_delete,
    },
}.items():
    # Never replace a handler MiniStack has itself (a later release may add these).
    provisioners._RESOURCE_HANDLERS.setdefault(resource_type, handler)

_execute_api_request = app._handle_execute_api_request


async def _rest_api_request_as_sent(
    host, path, method, headers, body, query_params, raw_path=None, raw_query_string=None
):
    """An execute-api request; a REST API's with the path as the caller sent it."""
    parsed = app._parse_execute_api_url(host, path)
    if raw_path is not None and parsed is not None and rest_apis.find_api_scope(parsed[0]):
        path = raw_path
    return await _execute_api_request(
        host,
        path,
        method,
        headers,
        body,
        query_params,
        raw_path=raw_path,
        raw_query_string=raw_query_string,
    )


app._handle_execute_api_request = _rest_api_request_as_sent

_put_events = eventbridge._put_events
_now = eventbridge._now_ts
_entry_clock = threading.local()


def _now_or_entry_time():
    """The time of the entry being put, where it gave one; else now."""
    given = getattr(_entry_clock, "time", None)
    return given if given is not None else _now()


def _put_events_at_their_time(data, allow_aws_source=False):
    """PutEvents, each entry's event stamped with the entry's `Time` where it has one."""
    entries = data.get("Entries", [])
    timed = any(isinstance(e, dict) and e.get("Time") is not None for e in entries)
    if not timed or len(entries) > 10:
        return _put_events(data, allow_aws_source)
    results, failed = [], 0
    for entry in entries:
        given = eventbridge._coerce_timestamp(entry.get("Time"))
        _entry_clock.time = given if isinstance(given, (int, float)) else None
        try:
            status, headers, body = _put_events({**data, "Entries": [entry]}, allow_aws_source)
        finally:
            _entry_clock.time = None
        if status != 200:
            return status, headers, body
        answer = json.loads(body)
        results += answer.get("Entries", [])
        failed += answer.get("FailedEntryCount", 0)
    return eventbridge.json_response({"FailedEntryCount": failed, "Entries": results})


eventbridge._now_ts = _now_or_entry_time
eventbridge._put_events = _put_events_at_their_time

if __name__ == "__main__":
    from ministack.app import main

    main()
