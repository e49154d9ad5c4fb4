"""The local stack's AWS emulator: moto's server, with DynamoDB item operations made atomic.

moto (5.2.5) serves requests on threads, and two of its DynamoDB operations are not atomic
the way AWS's are:

- TransactWriteItems snapshots each table it touches and, when the transaction is
  cancelled (a condition failed), puts the snapshot back: every write another request
  made in the meantime is lost.
- UpdateItem on a new key first stores an item holding only the key and then applies the
  update, so a concurrent read can see a half-written item.

Our store relies on both behaving as on AWS (a cancelled transaction is normal: a replayed
idempotency key, a lost race). One lock around every DynamoDB item operation makes each of
them atomic.

moto publishes state machine versions and keeps aliases, but cannot start an execution
through either, nor list versions. The releases of our template need both (new orders
start through the alias `live`; a running execution keeps its version), so this launcher
adds them the way AWS behaves: StartExecution on a version ARN runs that version's
definition, on an alias ARN a version chosen by the alias's routing weights; the
execution belongs to the state machine (one name space, one execution ARN) and
DescribeExecution and ListExecutions report its stateMachineVersionArn and
stateMachineAliasArn; ListExecutions on a version or alias ARN lists its executions;
ListStateMachineVersions lists versions newest first; DeleteStateMachineVersion deletes one
(refused, ConflictException, while an alias routes to it).

The table's stream (read by the local stack's stream poller, `local-stack poll-streams`,
as Lambda's event source mapping reads it) holds exactly the writes that happened, one
record per item a request changed, and its shard iterators expire as AWS's do (see
"DynamoDB Streams" below). A state machine definition is parsed once, not once per
execution (see "One parse per definition" below). Everything else is moto as pinned in
requirements-stack.txt.

Run as moto_server is run: `python infra/moto/server.py -H 127.0.0.1 -p 4598`.
"""

import copy
import functools
import inspect
import json
import os
import random
import sys
import threading
import time

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult
from moto.dynamodb.models.utilities import dynamo_json_dump
from moto.dynamodbstreams.models import DynamoDBStreamsBackend, ShardIterator
from moto.server import main
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.models import StepFunctionsParserBackend
from moto.stepfunctions.responses import StepFunctionResponse

ITEM_OPERATIONS = (
    "put_item",
    "get_item",
    "update_item",
    "delete_item",
    "query",
    "scan",
    "batch_get_item",
    "batch_write_item",
    "transact_get_items",
    "transact_write_items",
    "execute_statement",
    "execute_transaction",
    "batch_execute_statement",
)

# The operations that write stream records (see "DynamoDB Streams" below).
WRITE_OPERATIONS = (
    "put_item",
    "update_item",
    "delete_item",
    "batch_write_item",
    "execute_statement",
    "execute_transaction",
    "batch_execute_statement",
)

_lock = threading.RLock()


def _atomic(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with _lock:
            return method(*args, **kwargs)

    return wrapper


def _atomic_write(method):
    """`_atomic`, and the request's stream records folded into one per item."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with _lock:
            before = _stream_lengths(self)
            try:
                return method(self, *args, **kwargs)
            finally:
                _fold_streams(self, before)

    return wrapper


_moto_transact_write_items = DynamoDBBackend.transact_write_items

for _name in ITEM_OPERATIONS:
    _wrap = _atomic_write if _name in WRITE_OPERATIONS else _atomic
    setattr(DynamoDBBackend, _name, _wrap(getattr(DynamoDBBackend, _name)))


# TransactWriteItems without whole-table copies.
#
# moto deep-copies every table a transaction touches, to put the copy back if the
# transaction is cancelled. That costs time in proportion to the table (every transaction
# copies every item), and moto's models track every instance they create, copies
# included, for good: each transaction leaked a full copy of the table. A chaos run of 150
# orders left 2,637 table copies (2 million items, 4.6 GB) in memory, and each order was
# slower than the one before. Under the lock above nothing else touches the table during
# a transaction, so it is enough to remember the items the transaction names and to put
# those back when it is cancelled; moto's own restore then puts back the very table it
# changed, which the copy module below hands it instead of a copy.


class _TablesNotCopied:
    """The `copy` module as moto's DynamoDB models see it during a transaction, except
    that a table is not deep-copied."""

    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value, memo=None):
        if isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)


def _named_items(backend, transact_items):
    """(table, key, attributes before) of every item the transaction names."""
    named = []
    for entry in transact_items:
        for op_type, op in entry.items():
            try:
                table = backend.get_table(op["TableName"])
                source = op["Item"] if op_type == "Put" else op["Key"]
                key = {table.hash_key_attr: source[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = source[table.range_key_attr]
                current = backend.get_item(op["TableName"], key)
            except Exception:  # noqa: BLE001 moto reports a malformed entry itself
                continue
            before = None if current is None else current.to_json()["Attributes"]
            named.append((op["TableName"], key, before))
    return named


def _transact_write_items(self, transact_items):
    with _lock:
        named = _named_items(self, transact_items)
        streams = _stream_lengths(self)
        dynamodb_models.copy = _TablesNotCopied()
        try:
            result = _moto_transact_write_items(self, transact_items)
            _fold_streams(self, streams)
            return result
        except BaseException:
            for table_name, key, before in reversed(named):
                if before is None:
                    if self.get_item(table_name, key) is not None:
                        self.delete_item(table_name, key)
                else:
                    self.put_item(table_name, before)
            # Nothing happened: the stream shows nothing either (the items written before
            # the failing one, and the writes that undid them, are dropped).
            _drop_records_since(self, streams)
            raise
        finally:
            dynamodb_models.copy = copy


DynamoDBBackend.transact_write_items = _transact_write_items


# Queries that read one partition, as DynamoDB's do.
#
# moto's Table.query starts from all_items(): every item of the table, sorted, for every
# query, then keeps those of the queried partition. An order's read (its partition) thus
# cost time in proportion to the whole table, and the stack slowed as orders piled up.
# A query of the base table now starts from its one partition; a query of an index from
# the table's items unsorted (moto sorts what matches itself). Same results, same order.

_moto_query = Table.query
_query_signature = inspect.signature(_moto_query)


def _sort_key(item):
    return (item.hash_key, item.range_key) if item.range_key else item.hash_key


def _query(self, *args, **kwargs):
    arguments = _query_signature.bind(self, *args, **kwargs).arguments
    hash_key = arguments.get("hash_key")
    if arguments.get("index_name"):
        items = [
            item
            for hash_set in self.items.values()
            for item in (hash_set.values() if self.range_key_attr else [hash_set])
        ]
    elif hash_key is not None:
        partition = self.items.get(hash_key)
        if partition is None:
            items = []
        elif self.range_key_attr:
            items = sorted(partition.values(), key=_sort_key)
        else:
            items = [partition]
    else:
        return _moto_query(self, *args, **kwargs)
    # Under the lock of every item operation: no other request sees the override.
    self.all_items = lambda: items
    try:
        return _moto_query(self, *args, **kwargs)
    finally:
        del self.all_items


Table.query = _query



# DynamoDB Streams as AWS writes and reads them.
#
# The transactional outbox relies on the stream holding exactly the writes that happened.
# moto 5.2.5 differs from AWS in three ways:
#
# - A cancelled TransactWriteItems leaves records in the stream: those of the items it
#   wrote before the failing one, and those of the writes that undo them (above). An
#   outbox item of a transaction that never happened would be delivered. AWS writes none.
# - UpdateItem on a new key writes two INSERT records (the key alone, then the item); AWS
#   writes one record per item a request changed.
# - Every GetRecords hands out a new shard iterator, kept for good (a poller reading four
#   times a second keeps about 8 KB more each second), and an unknown iterator is
#   answered 500. AWS's iterators expire 15 minutes after they are handed out
#   (ExpiredIteratorException, 400).
#
# Under the lock, a write request's records are folded into one per item, from the item's
# first and last state (INSERT, MODIFY, REMOVE, or none when it neither existed before nor
# after), and a cancelled transaction's are dropped; GetRecords and GetShardIterator take
# the lock too, so no reader sees records before they are folded. An iterator expires
# MOTO_SHARD_ITERATOR_SECONDS after it was handed out (default 900, AWS's 15 minutes) and
# is then forgotten.

_ITERATOR_SECONDS = float(os.environ.get("MOTO_SHARD_ITERATOR_SECONDS", "900"))


def _stream_lengths(backend):
    """The number of records in each stream of the backend's tables."""
    return {
        name: len(table.stream_shard.items)
        for name, table in backend.tables.items()
        if table.stream_shard is not None
    }


def _new_records(backend, before):
    """(shard, index of the first new record) for every stream that grew since `before`."""
    for name, table in backend.tables.items():
        shard = table.stream_shard
        start = before.get(name)
        if shard is not None and start is not None and len(shard.items) > start:
            yield shard, start


def _drop_records_since(backend, before):
    for shard, start in list(_new_records(backend, before)):
        del shard.items[start:]


def _fold_streams(backend, before):
    for shard, start in list(_new_records(backend, before)):
        shard.items[start:] = _folded(shard.items[start:])
        for offset, item in enumerate(shard.items[start:]):
            item.record["dynamodb"]["SequenceNumber"] = str(
                shard.starting_sequence_number + start + offset
            )


def _folded(records):
    """One record per item: its event from the first and last record of the item."""
    by_key = {}
    for record in records:
        key = json.dumps(record.record["dynamodb"]["Keys"], sort_keys=True)
        first, _ = by_key.get(key, (record, record))
        by_key[key] = (first, record)
    folded = []
    for first, last in by_key.values():
        existed = first.record["eventName"] != "INSERT"
        exists = last.record["eventName"] != "REMOVE"
        if not existed and not exists:
            continue
        old_image = first.record["dynamodb"].get("OldImage")
        change = last.record["dynamodb"]
        change.pop("OldImage", None)
        if existed and old_image is not None:
            change["OldImage"] = old_image
        last.record["eventName"] = (
            "MODIFY" if existed and exists else "INSERT" if exists else "REMOVE"
        )
        change.pop("SizeBytes", None)
        change["SizeBytes"] = len(dynamo_json_dump(change))
        folded.append(last)
    return folded


class ExpiredIteratorException(JsonRESTError):
    def __init__(self):
        super().__init__(
            "com.amazonaws.dynamodb.v20120810#ExpiredIteratorException",
            f"Iterator expired: a shard iterator is valid for {_ITERATOR_SECONDS:g} s"
            " after it was handed out",
        )


_moto_shard_iterator_init = ShardIterator.__init__
_moto_get_records = DynamoDBStreamsBackend.get_records


def _shard_iterator_init(self, *args, **kwargs):
    _moto_shard_iterator_init(self, *args, **kwargs)
    self.handed_out = time.monotonic()


def _get_records(self, iterator_arn, limit):
    with _lock:
        # Iterators are kept in the order they were handed out: the expired ones first.
        now = time.monotonic()
        expired = []
        for arn, iterator in self.shard_iterators.items():
            if now - iterator.handed_out <= _ITERATOR_SECONDS:
                break
            expired.append(arn)
        for arn in expired:
            del self.shard_iterators[arn]
        if iterator_arn not in self.shard_iterators:
            raise ExpiredIteratorException()
        return _moto_get_records(self, iterator_arn, limit)


ShardIterator.__init__ = _shard_iterator_init
DynamoDBStreamsBackend.get_records = _get_records
DynamoDBStreamsBackend.get_shard_iterator = _atomic(DynamoDBStreamsBackend.get_shard_iterator)


# Step Functions versions and aliases (see the module's documentation).

_start_lock = threading.Lock()
_moto_start_execution = StepFunctionsParserBackend.start_execution
_moto_describe_execution = StepFunctionResponse.describe_execution
_moto_list_executions = StepFunctionResponse.list_executions


def _qualified(arn):
    """(state machine ARN, qualifier or None) of a state machine, version or alias ARN."""
    parts = arn.split(":")
    if len(parts) == 8:
        return ":".join(parts[:7]), parts[7]
    return arn, None


def _start_execution(self, state_machine_arn, name=None, execution_input=None, trace_header=None):
    machine_arn, qualifier = _qualified(state_machine_arn)
    if qualifier is None:
        return _moto_start_execution(self, state_machine_arn, name, execution_input, trace_header)
    alias_arn = None
    if qualifier.isdigit():
        version_arn = state_machine_arn
    else:
        alias = self.describe_state_machine_alias(state_machine_arn)
        alias_arn = alias.arn
        routes = alias.routing_configuration
        version_arn = random.choices(
            [route["stateMachineVersionArn"] for route in routes],
            weights=[int(route["weight"]) for route in routes],
        )[0]
    version = self.describe_state_machine(version_arn)
    machine = self.describe_state_machine(machine_arn)
    with _start_lock:
        known = {id(execution) for execution in machine.executions}
        current = machine.definition
        # The execution takes a snapshot of the machine when it starts: of this version.
        machine.definition = version.definition
        try:
            execution = _moto_start_execution(
                self, machine_arn, name, execution_input, trace_header
            )
        finally:
            machine.definition = current
    if id(execution) not in known:
        execution.state_machine_version_arn = version_arn
        execution.state_machine_alias_arn = alias_arn
    return execution


def _release_fields(execution):
    fields = {}
    version = getattr(execution, "state_machine_version_arn", None)
    alias = getattr(execution, "state_machine_alias_arn", None)
    if version:
        fields["stateMachineVersionArn"] = version
    if alias:
        fields["stateMachineAliasArn"] = alias
    return fields


def _describe_execution(self):
    result = _moto_describe_execution(self)
    execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
    result.result.update(_release_fields(execution))
    return result


def _list_executions(self):
    arn = self._get_param("stateMachineArn")
    machine_arn, qualifier = _qualified(arn)
    machine = self.stepfunction_backend.describe_state_machine(machine_arn)
    by_arn = {execution.execution_arn: execution for execution in machine.executions}
    if qualifier is None:
        result = _moto_list_executions(self)
        for item in result.result["executions"]:
            execution = by_arn.get(item["executionArn"])
            if execution is not None:
                item.update(_release_fields(execution))
        return result
    status_filter = self._get_param("statusFilter")
    chosen = [
        execution
        for execution in machine.executions
        if arn in _release_fields(execution).values()
        and (not status_filter or execution.status == status_filter)
    ]
    chosen.sort(key=lambda execution: execution.start_date, reverse=True)
    items = []
    for execution in chosen:
        item = {
            "executionArn": execution.execution_arn,
            "name": execution.name,
            "startDate": execution.start_date,
            "stateMachineArn": machine.arn,
            "status": execution.status,
        }
        if execution.stop_date is not None:
            item["stopDate"] = execution.stop_date
        item.update(_release_fields(execution))
        items.append(item)
    return ActionResult({"executions": items})


def _list_state_machine_versions(self):
    machine = self.stepfunction_backend.describe_state_machine(
        _qualified(self._get_param("stateMachineArn"))[0]
    )
    versions = sorted(
        getattr(machine, "versions", {}).values(), key=lambda v: v.version, reverse=True
    )
    return ActionResult(
        {
            "stateMachineVersions": [
                {"stateMachineVersionArn": v.arn, "creationDate": v.creation_date}
                for v in versions
            ]
        }
    )


def _delete_state_machine_version(self):
    version_arn = self._get_param("stateMachineVersionArn")
    machine_arn, qualifier = _qualified(version_arn)
    if qualifier is None or not qualifier.isdigit():
        raise JsonRESTError("ValidationException", f"{version_arn} is not a version ARN")
    machine = self.stepfunction_backend.describe_state_machine(machine_arn)
    # As AWS: a version an alias routes to cannot be deleted.
    for alias in getattr(machine, "aliases", {}).values():
        if any(
            route["stateMachineVersionArn"] == version_arn
            for route in alias.routing_configuration
        ):
            raise JsonRESTError(
                "ConflictException",
                f"version {version_arn} is referenced by alias {alias.arn}",
            )
    getattr(machine, "versions", {}).pop(int(qualifier), None)
    return ActionResult({})


StepFunctionResponse.list_state_machine_versions = _list_state_machine_versions
StepFunctionResponse.delete_state_machine_version = _delete_state_machine_version
StepFunctionResponse.describe_execution = _describe_execution
StepFunctionResponse.list_executions = _list_executions
StepFunctionsParserBackend.start_execution = _start_execution


# One parse per definition.
#
# moto parses a state machine's definition (an ANTLR parser, in Python) again for every
# execution it starts: 0.12-0.22 s of CPU for ours, under the one interpreter lock every
# request and execution of the emulator shares, so fifty orders placed at once spent
# seconds parsing the same text. The evaluation components a parse builds hold nothing of
# an execution (each execution evaluates them in an environment of its own, and every
# attribute of a component is set when it is built), so executions of one definition share
# one parse, as AWS compiles a definition once. A definition is the cache's key, byte for
# byte; the most recent _PARSED_KEPT are kept.

_PARSED_KEPT = 64
_parsed = {}
_parsed_lock = threading.Lock()
_moto_parse = AmazonStateLanguageParser.parse


def _parse_once(definition):
    with _parsed_lock:
        parsed = _parsed.get(definition)
    if parsed is None:
        # A syntax error raises here, as before, and nothing is kept.
        parsed = _moto_parse(definition)
        with _parsed_lock:
            _parsed[definition] = parsed
            while len(_parsed) > _PARSED_KEPT:
                del _parsed[next(iter(_parsed))]
    return parsed


AmazonStateLanguageParser.parse = staticmethod(_parse_once)

if __name__ == "__main__":
    sys.exit(main())
