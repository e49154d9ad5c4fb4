"""Translate a SAM template to plain CloudFormation, offline, for the checks of lint.sh.

cfn-lint (1.55+) lints SAM resources without running the SAM transform, and
`sam validate` swaps local DefinitionUri files for a fake S3 location. Neither sees
the resources SAM generates (roles, permissions, the API deployment) nor the state
machine definitions, so neither catches circular dependencies or a malformed ASL
structure. This script runs the SAM translator (no AWS call: managed policies are
resolved from the translator's bundled map) with:

- local function CodeUri replaced by a placeholder S3 location;
- every `AWS::Include` of a local file (openapi.yaml) replaced by the file, as
  CloudFormation expands it before the SAM transform;
- every local state machine DefinitionUri read from disk, and emitted as the
  `Definition` object of the generated AWS::StepFunctions::StateMachine (instead of
  SAM's joined DefinitionString), so cfn-lint's ASL rule (E3601) can read it;
- the skips a SAM resource declares for the checks (`Metadata.checkov` for checkov,
  `Metadata.parliament` for infra/check-policies.py) copied to every resource the
  transform generates from it, so a reason written once beside the SAM resource in
  template.yaml also covers its generated role, permissions, version, alias, stage...
  SAM itself copies a resource's Metadata only to the resource of the same logical id
  (and a function's to its EventInvokeConfig).
  A generated resource is one the template does not declare; it belongs to the SAM
  resource whose logical id is the longest prefix of its own (the translator names
  what it generates `<SAM logical id><suffix>`: OrdersApiFunctionRole, OrdersApiv1Stage).

Usage: python translate-sam.py TEMPLATE > translated.json
Run by infra/lint.sh (and tests/release_template.rs); needs cfn-lint and aws-sam-translator
(both in .venv-lint).
"""

import copy
import json
import os
import sys
from pathlib import Path

import boto3
import yaml
from cfnlint.decode import decode
from samtranslator.parser.parser import Parser
from samtranslator.public.exceptions import InvalidDocumentException
from samtranslator.translator.translator import Translator

PLACEHOLDER_CODE = "s3://offline-lint-placeholder/code.zip"
SKIP_METADATA = ("checkov", "parliament")


def is_local(uri: object) -> bool:
    return isinstance(uri, str) and not uri.startswith("s3://")


def copy_skips_to_generated(declared: dict, translated: dict) -> None:
    """Gives each generated resource the check skips of the SAM resource it came from."""
    sam_ids = sorted(
        (i for i, r in declared.items() if r.get("Type", "").startswith("AWS::Serverless::")),
        key=len,
        reverse=True,
    )
    for logical_id, resource in translated.items():
        if logical_id in declared and logical_id not in sam_ids:
            continue
        owner = next((i for i in sam_ids if logical_id.startswith(i)), None)
        skips = {
            key: value
            for key, value in declared.get(owner, {}).get("Metadata", {}).items()
            if key in SKIP_METADATA
        }
        if skips:
            resource.setdefault("Metadata", {}).update(skips)


def expand_includes(node: object, base: Path) -> object:
    """Replaces each `Fn::Transform: {Name: AWS::Include, Parameters: {Location: <local
    file>}}` by the file's content, as CloudFormation does before the SAM transform
    (snippet-level macros are evaluated first). Like CloudFormation, the snippet is read
    as plain YAML or JSON: shorthand intrinsics (`!Sub`) are an error there."""
    if isinstance(node, list):
        return [expand_includes(value, base) for value in node]
    if not isinstance(node, dict):
        return node
    transform = node.get("Fn::Transform")
    if isinstance(transform, dict) and transform.get("Name") == "AWS::Include":
        location = (transform.get("Parameters") or {}).get("Location")
        if not is_local(location):
            raise SystemExit(f"AWS::Include of {location!r}: only local files are read offline")
        snippet = yaml.safe_load((base / location).read_text())
        rest = {key: value for key, value in node.items() if key != "Fn::Transform"}
        if rest:
            raise SystemExit(f"AWS::Include of {location}: a map with other keys is not supported")
        return snippet
    return {key: expand_includes(value, base) for key, value in node.items()}


def main(template_path: str) -> int:
    path = Path(template_path)
    decoded, errors = decode(str(path))
    if errors:
        for error in errors:
            print(error, file=sys.stderr)
        return 1
    # Plain dicts and strings: the translator does not need cfn-lint's line-marked nodes.
    template = json.loads(json.dumps(decoded))

    template = expand_includes(template, path.parent)

    function_globals = template.get("Globals", {}).get("Function", {})
    if is_local(function_globals.get("CodeUri")):
        function_globals["CodeUri"] = PLACEHOLDER_CODE

    definitions = {}
    for logical_id, resource in template.get("Resources", {}).items():
        properties = resource.get("Properties", {})
        kind = resource.get("Type")
        if kind == "AWS::Serverless::Function" and is_local(properties.get("CodeUri")):
            properties["CodeUri"] = PLACEHOLDER_CODE
        if kind == "AWS::Serverless::StateMachine" and is_local(properties.get("DefinitionUri")):
            asl_path = path.parent / properties.pop("DefinitionUri")
            definitions[logical_id] = yaml.safe_load(asl_path.read_text())  # JSON or YAML
            properties["Definition"] = definitions[logical_id]

    # The translator edits the template it is given (Globals, implicit APIs).
    declared = copy.deepcopy(template["Resources"])

    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    translator = Translator(
        managed_policy_map=None,
        sam_parser=Parser(),
        plugins=[],
        boto_session=boto3.session.Session(region_name=region),
    )
    try:
        translated = translator.translate(
            sam_template=template,
            parameter_values={},
            # Only called for a managed policy name missing from the bundled map.
            get_managed_policy_map=lambda: {},
        )
    except InvalidDocumentException as error:
        for cause in error.causes:
            print(f"SAM translation: {cause}", file=sys.stderr)
        return 1

    for logical_id, definition in definitions.items():
        properties = translated["Resources"][logical_id]["Properties"]
        properties.pop("DefinitionString", None)
        properties["Definition"] = definition

    copy_skips_to_generated(declared, translated["Resources"])

    json.dump(translated, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
