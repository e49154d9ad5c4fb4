"""Check every IAM policy of the SAM-translated template with parliament, offline.

The policies checked are the documents the template deploys: each role's inline
policies (SAM's policy templates, such as SQSSendMessagePolicy, arrive expanded into
inline policies), AWS::IAM::Policy and ManagedPolicy documents, and the resource
policies (queue, topic, bucket and secret policies, KMS key policies). Not checked, and
listed as such: AWS managed policies (ManagedPolicyArns: AWS's documents, not in the
template) and roles' trust policies (parliament models no policy without a Resource).

parliament reads ARNs, not CloudFormation: every intrinsic (Ref, Fn::GetAtt, Fn::Sub,
Fn::Join) is resolved first, a resource to a placeholder of its service's ARN shape
(`!GetAtt OrdersTable.Arn` -> arn:aws:dynamodb:us-east-1:123456789012:table/OrdersTable),
so parliament can match actions to resource types. A reference it has no placeholder for
is an error naming it: add its shape to PLACEHOLDERS.

Findings of severity LOW are counted, not listed. A finding of severity MEDIUM or above
is listed, and fails the check unless the resource explains it in template.yaml:

    Metadata:
      parliament:
        skip:
          - issue: PERMISSIONS_MANAGEMENT_ACTIONS
            comment: "why this is what the resource needs"

on the resource itself, or on the SAM resource the policy's resource was generated from
(infra/translate-sam.py copies `Metadata.parliament` to the generated role). A skip that
explains no finding is an error too, so none outlives its reason.

Usage: python check-policies.py TRANSLATED_TEMPLATE.json
Run by infra/lint.sh with .venv-lint's Python (parliament is pinned there); prints one
line per finding (resource, policy, issue, severity, detail or the skip's reason) and
exits 1 on an unexplained finding or an unused skip.
"""

import json
import os
import re
import sys
from collections import Counter
from pathlib import Path

import parliament
from parliament import analyze_policy_string, enhance_finding, override_config

PARTITION = "aws"
ACCOUNT = "123456789012"
REGION = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
FAILING = ("MEDIUM", "HIGH", "CRITICAL")

# Properties that hold a policy document, wherever they appear in a resource.
POLICY_KEYS = ("PolicyDocument", "KeyPolicy", "ResourcePolicy")


def arn(service: str, resource: str) -> str:
    return f"arn:{PARTITION}:{service}:{REGION}:{ACCOUNT}:{resource}"


# Resource type -> {"Ref" or attribute: placeholder}, `{id}` standing for the logical id:
# the references the template's policies make, and a few they are likely to make next.
PLACEHOLDERS = {
    "AWS::IAM::ManagedPolicy": {"Ref": f"arn:{PARTITION}:iam::{ACCOUNT}:policy/{{id}}"},
    "AWS::ApiGateway::RestApi": {"Ref": "{id}"},
    "AWS::DynamoDB::Table": {
        "Arn": arn("dynamodb", "table/{id}"),
        "StreamArn": arn("dynamodb", "table/{id}/stream/2026-01-01T00.00.00.000"),
    },
    "AWS::Events::EventBus": {"Arn": arn("events", "event-bus/{id}"), "Ref": "{id}"},
    "AWS::Events::Rule": {"Arn": arn("events", "rule/{id}")},
    "AWS::KMS::Key": {"Arn": arn("kms", "key/{id}")},
    "AWS::Lambda::Function": {"Arn": arn("lambda", "function:{id}")},
    "AWS::SecretsManager::Secret": {"Ref": arn("secretsmanager", "secret:{id}-AbCdEf")},
    "AWS::SQS::Queue": {"Arn": arn("sqs", "{id}"), "QueueName": "{id}"},
    "AWS::StepFunctions::StateMachine": {"Ref": arn("states", "stateMachine:{id}"), "Name": "{id}"},
    "AWS::StepFunctions::StateMachineAlias": {"Ref": arn("states", "stateMachine:{id}:live")},
}
PSEUDO = {
    "AWS::Partition": PARTITION,
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::StackName": "stack",
    "AWS::URLSuffix": "amazonaws.com",
}


class Unresolvable(Exception):
    pass


class Resolver:
    """Resolves intrinsic functions to the placeholder values above."""

    def __init__(self, template: dict):
        self.resources = template.get("Resources", {})
        self.parameters = template.get("Parameters", {})

    def reference(self, name: str, attribute: str = "Ref") -> str:
        if attribute == "Ref" and name in PSEUDO:
            return PSEUDO[name]
        if attribute == "Ref" and name in self.parameters:
            return str(self.parameters[name].get("Default", name))
        kind = self.resources.get(name, {}).get("Type")
        shape = PLACEHOLDERS.get(kind, {}).get(attribute)
        if shape is None:
            what = f"!Ref {name}" if attribute == "Ref" else f"!GetAtt {name}.{attribute}"
            raise Unresolvable(f"{what} ({kind}) has no placeholder: add it to PLACEHOLDERS")
        return shape.format(id=name)

    def substitute(self, text: str, variables: dict) -> str:
        def value(match: re.Match) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return self.scalar(variables[name])
            if "." in name:
                return self.reference(*name.split(".", 1))
            return self.reference(name)

        return re.sub(r"\$\{([^}]+)\}", value, text)

    def scalar(self, value) -> str:
        resolved = self.resolve(value)
        if not isinstance(resolved, str):
            raise Unresolvable(f"{json.dumps(value)} is not a string")
        return resolved

    def resolve(self, value):
        if isinstance(value, list):
            return [self.resolve(item) for item in value if item != {"Ref": "AWS::NoValue"}]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (name, argument), = value.items()
            if name == "Ref":
                return self.reference(argument)
            if name == "Fn::GetAtt":
                parts = argument.split(".", 1) if isinstance(argument, str) else argument
                return self.reference(parts[0], parts[1])
            if name == "Fn::Sub":
                text, variables = (argument, {}) if isinstance(argument, str) else argument
                return self.substitute(text, variables)
            if name == "Fn::Join":
                separator, items = argument
                return separator.join(self.scalar(item) for item in self.resolve(items))
            if name.startswith("Fn::"):
                raise Unresolvable(f"{name} in a policy is not supported")
        return {key: self.resolve(item) for key, item in value.items()}


def policies(properties: dict):
    """(label, document) of every policy document in a resource's properties."""

    def walk(value, path):
        if isinstance(value, dict):
            for key, item in value.items():
                if key in POLICY_KEYS:
                    yield value.get("PolicyName", ".".join(path + [key])), item
                else:
                    yield from walk(item, path + [key])
        elif isinstance(value, list):
            for index, item in enumerate(value):
                yield from walk(item, path[:-1] + [f"{path[-1]}[{index}]"])

    yield from walk(properties, [])


def main(path: str) -> int:
    template = json.loads(Path(path).read_text())
    resolver = Resolver(template)
    community = Path(parliament.__file__).parent / "community_auditors"
    override_config(community / "config_override.yaml")

    rows = []
    low = Counter()
    checked = 0
    failures = 0
    trust_policies = 0
    aws_managed = set()
    for logical_id, resource in template.get("Resources", {}).items():
        properties = resource.get("Properties", {})
        trust_policies += "AssumeRolePolicyDocument" in properties
        for arn in properties.get("ManagedPolicyArns", []):
            # The template's own managed policies are checked where they are defined.
            if isinstance(arn, dict) and "Ref" in arn:
                continue
            aws_managed.add(resolver.scalar(arn).rsplit("/", 1)[-1])
        documents = list(policies(properties))
        if not documents:
            continue
        skips = {
            skip["issue"]: skip.get("comment", "")
            for skip in resource.get("Metadata", {}).get("parliament", {}).get("skip", [])
        }
        used = set()
        unresolved = False
        for label, document in documents:
            checked += 1
            try:
                text = json.dumps(resolver.resolve(document))
            except Unresolvable as error:
                rows.append((logical_id, label, "UNRESOLVABLE", "ERROR", str(error)))
                failures += 1
                unresolved = True
                continue
            policy = analyze_policy_string(text, include_community_auditors=True)
            for finding in map(enhance_finding, policy.findings):
                # The community auditors name the actions in the location, not the detail.
                about = finding.detail or sorted(finding.location.get("actions", []))
                if finding.issue in skips:
                    used.add(finding.issue)
                    detail = f"skipped: {skips[finding.issue]}"
                elif finding.severity in FAILING:
                    failures += 1
                    detail = finding.title
                else:
                    low[finding.issue] += 1
                    continue
                if about:
                    detail += " " + json.dumps(about, default=str)
                rows.append((logical_id, label, finding.issue, finding.severity, detail))
        for issue in [] if unresolved else sorted(skips.keys() - used):
            rows.append((logical_id, "-", issue, "ERROR", "no finding to skip: remove the skip"))
            failures += 1

    line = "    {:<34} {:<36} {:<31} {:<8} {}"
    print(line.format("resource", "policy", "issue", "severity", "detail"))
    for row in rows:
        print(line.format(*row))
    counts = ", ".join(f"{issue} {n}" for issue, n in sorted(low.items()))
    print(f"    {checked} policies checked, {failures} failing; LOW, not listed: {counts or 'none'}")
    managed = ", ".join(sorted(aws_managed))
    print(f"    not checked: {trust_policies} trust policies; AWS managed {managed}")
    if failures:
        print("    fix the policy, or skip the finding beside its resource in template.yaml")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
