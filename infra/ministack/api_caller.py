"""Creates the IAM user the tests and tools call the orders API as on a MiniStack stack,
allowed exactly `execute-api:Invoke` on the API's stage (every route of it), and
prints its access key as JSON ({"access_key_id", "secret_access_key"}).

    .venv-ministack/bin/python infra/ministack/api_caller.py <api id> <stage>
    (AWS_ENDPOINT_URL, AWS_REGION and the stack's root credentials in the environment)

MiniStack does not verify signatures made with its root credentials (`test`); it does
verify those of an IAM user, and checks the user's policy: signing as this user proves
that the requests are signed correctly and that the route wants execute-api:Invoke.
"""

import json
import sys

import boto3

USER = "orders-api-caller"


def main(api_id: str, stage: str) -> None:
    iam = boto3.client("iam")
    sts = boto3.client("sts")
    account = sts.get_caller_identity()["Account"]
    region = boto3.session.Session().region_name
    try:
        iam.create_user(UserName=USER)
    except iam.exceptions.EntityAlreadyExistsException:
        pass
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "CallTheOrdersApi",
                "Effect": "Allow",
                "Action": "execute-api:Invoke",
                "Resource": f"arn:aws:execute-api:{region}:{account}:{api_id}/{stage}/*",
            }
        ],
    }
    iam.put_user_policy(UserName=USER, PolicyName="CallTheOrdersApi", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=USER)["AccessKey"]
    print(json.dumps({"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
