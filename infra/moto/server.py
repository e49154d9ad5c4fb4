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

moto also lacks Step Functions' ListStateMachineVersions, which `orderctl releases` and
`orderctl orders resume --latest` call; it is answered from the versions moto keeps.
Everything else is moto as pinned in requirements-stack.txt.

Run as moto_server is run: `python infra/moto/server.py -H 127.0.0.1 -p 4598`.
"""

import copy
import functools
import sys
import threading

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.core.responses import ActionResult
from moto.server import main
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

_lock = threading.RLock()


def _atomic(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with _lock:
            return method(*args, **kwargs)

    return wrapper


_moto_transact_write_items = DynamoDBBackend.transact_write_items

for _name in ITEM_OPERATIONS:
    setattr(DynamoDBBackend, _name, _atomic(getattr(DynamoDBBackend, _name)))


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
        dynamodb_models.copy = _TablesNotCopied()
        try:
            return _moto_transact_write_items(self, transact_items)
        except BaseException:
            for table_name, key, before in reversed(named):
                if before is None:
                    if self.get_item(table_name, key) is not None:
                        self.delete_item(table_name, key)
                else:
                    self.put_item(table_name, before)
            raise
        finally:
            dynamodb_models.copy = copy


DynamoDBBackend.transact_write_items = _transact_write_items



# ListStateMachineVersions, newest first as on AWS, from the versions moto keeps (the
# local stack publishes none: moto cannot start executions through them).


def _list_state_machine_versions(self):
    machine = self.stepfunction_backend.describe_state_machine(
        self._get_param("stateMachineArn")
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


StepFunctionResponse.list_state_machine_versions = _list_state_machine_versions

if __name__ == "__main__":
    sys.exit(main())
