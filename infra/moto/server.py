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
them atomic. Everything else is moto as pinned in requirements-stack.txt.

Run as moto_server is run: `python infra/moto/server.py -H 127.0.0.1 -p 4598`.
"""

import functools
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

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


for _name in ITEM_OPERATIONS:
    setattr(DynamoDBBackend, _name, _atomic(getattr(DynamoDBBackend, _name)))

if __name__ == "__main__":
    sys.exit(main())
