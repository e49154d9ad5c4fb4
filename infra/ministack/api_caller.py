"""Creates the IAM users the tests and tools call the orders API as on a MiniStack stack,
and prints their access keys and ARNs as JSON ({"<name>": {"access_key_id",
"secret_access_key", "arn"}}):

- `orders-api-caller` (name ""): the stack's own caller, allowed `execute-api:Invoke` on
  every route of the API's stage;
- `orders-api-portal` (name "PORTAL"): allowed every route of the stage too;
- `orders-api-app` (name "APP"): allowed `GET /orders/*` and `POST /orders` only, not
  the cancel route: read and cancel are separate IAM permissions.

    .venv-ministack/bin/python infra/ministack/api_caller.py <api id> <stage>
    (AWS_ENDPOINT_URL, AWS_REGION and the stack's root credentials in the environment)

MiniStack does not verify signatures made with its root credentials (`test`); it does
verify those of an IAM user, and checks the user's policy: signing as these users proves
that the requests are signed correctly and that each route wants execute-api:Invoke on
itself. What each caller may do for which merchants is its scope, in the table
(`orderctl callers`), which the local stack grants its own caller at start.
"""

import json
import sys

import boto3


def routes(prefix: str, which: list) -> list:
    return [f"{prefix}/{route}" for route in which]


def main(api_id: str, stage: str) -> None:
    iam = boto3.client("iam")
    sts = boto3.client("sts")
    account = sts.get_caller_identity()["Account"]
    region = boto3.session.Session().region_name
    stage_arn = f"arn:aws:execute-api:{region}:{account}:{api_id}/{stage}"
    callers = {
        "": ("orders-api-caller", [f"{stage_arn}/*"]),
        "PORTAL": ("orders-api-portal", [f"{stage_arn}/*"]),
        "APP": ("orders-api-app", routes(stage_arn, ["GET/orders/*", "POST/orders"])),
    }
    keys = {}
    for name, (user, resources) in callers.items():
        try:
            created = iam.create_user(UserName=user)["User"]
        except iam.exceptions.EntityAlreadyExistsException:
            created = iam.get_user(UserName=user)["User"]
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "CallTheOrdersApi",
                    "Effect": "Allow",
                    "Action": "execute-api:Invoke",
                    "Resource": resources,
                }
            ],
        }
        iam.put_user_policy(UserName=user, PolicyName="CallTheOrdersApi", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        keys[name] = {
            "access_key_id": key["AccessKeyId"],
            "secret_access_key": key["SecretAccessKey"],
            "arn": created["Arn"],
        }
    print(json.dumps(keys))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
