#!/usr/bin/env python3
"""Checks the README's API examples against the contract (docs/openapi.json).

Every ```http and ```json block in the README's "## API" section is an
example of one operation, placed like this:

- an ```http block starting `METHOD /path` is a request (headers, a blank
  line, then the JSON body if any);
- an ```http block starting `HTTP/1.1 NNN`, or a ```json block whose first
  line is a status (`201 Created`), is the answer of the request block right
  above it (nothing but blank lines between them);
- anything else needs a marker on the line before it (blank lines allowed):
  `<!-- contract: METHOD /path/{id} NNN -->` (an answer with that status),
  `<!-- contract: METHOD /path request -->`, or
  `<!-- contract: none, why -->` for JSON that is no exchange with the API
  (e.g. what Switchboard sends to a bot).

A block that is none of these fails the check. A request body is validated
against the operation's request schema, its query parameters and headers
must be documented; an answer's status must be documented and its body
must match that response's schema. Examples may elide: a string with `…`
stands for any valid value of its field, and a `"…": "…"` member (or a bare
`…` member) for members left out.

An example of an operation the document does not describe is "not in the
contract yet" (reported, not a failure) while no documented path shares its
area (`/api/queues`, `/webhooks/twilio`); once the area is documented, an
example matching no operation fails.

Usage: check-readme-examples.py [README.md] [docs/openapi.json]; run with
the venv of scripts/contract-venv.sh (it needs jsonschema). Exits 1 when an
example is wrong, after listing every problem.
"""

import json
import os
import re
import sys
from dataclasses import dataclass, field

import jsonschema
from jsonschema import Draft202012Validator, FormatChecker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ELISION = "…"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
MARKER = re.compile(r"^\s*<!--\s*contract:\s*(.*?)\s*-->\s*$")
REQUEST_LINE = re.compile(r"^(%s) (\S+)(?: HTTP/1\.1)?$" % "|".join(METHODS))
STATUS_LINE = re.compile(r"^(?:HTTP/1\.1 )?(\d{3})\b")


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    lang: str
    text: list  # the lines inside the fence, unindented
    marker: str | None
    adjacent: bool  # only blank lines since the previous block


@dataclass
class Example:
    line: int
    method: str
    path: str  # as written, with its query
    status: int | None  # None for a request
    headers: dict = field(default_factory=dict)
    body: object = None


def api_section(lines):
    """The README's lines from `## API` to the next level-2 heading, with
    the 1-based number of the first; headings inside code blocks do not
    count."""
    start = lines.index("## API")
    fenced = False
    for n in range(start + 1, len(lines)):
        if FENCE.match(lines[n]):
            fenced = not fenced
        elif not fenced and lines[n].startswith("## "):
            return lines[start:n], start + 1
    return lines[start:], start + 1


def blocks(lines, first):
    """Every fenced block, with the marker just above it."""
    found, n, last_end, marker = [], 0, None, None
    while n < len(lines):
        fence = FENCE.match(lines[n])
        if MARKER.match(lines[n]):
            marker = MARKER.match(lines[n]).group(1)
        elif fence:
            indent, end = len(fence.group(1)), n + 1
            while not lines[end].strip().startswith("```"):
                end += 1
            between = lines[last_end + 1 : n] if last_end is not None else ["x"]
            found.append(
                Block(
                    line=first + n,
                    lang=fence.group(2),
                    text=[line[indent:] for line in lines[n + 1 : end]],
                    marker=marker,
                    adjacent=all(not line.strip() for line in between),
                )
            )
            n, last_end, marker = end, end, None
        elif lines[n].strip():
            marker = None
        n += 1
    return found


def parse_json(text, where):
    """The JSON of an example, with bare `…` members made `"…": "…"`."""
    text = re.sub(r",\s*…\s*}", ', "…": "…"}', text)
    text = re.sub(r"{\s*…\s*}", '{"…": "…"}', text)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}: not JSON: {error}") from None


def split_http(text):
    """(first line, headers, body text) of an http block."""
    first, rest = text[0].strip(), text[1:]
    blank = next((i for i, line in enumerate(rest) if not line.strip()), len(rest))
    headers = {}
    for line in rest[:blank]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return first, headers, "\n".join(rest[blank + 1 :]).strip()


def example_of(block, request):
    """The example a block is, or a string saying why it cannot be placed,
    or None when its marker says it is no exchange with the API."""
    where = f"README.md:{block.line}"
    if block.lang == "http":
        first, headers, body_text = split_http(block.text)
    else:
        first, headers = block.text[0].strip(), {}
        body_text = "\n".join(block.text[1:] if STATUS_LINE.match(first) else block.text)
    status = STATUS_LINE.match(first)
    body = parse_json(body_text, where) if body_text else None
    if block.marker is not None:
        return placed_by_marker(block, where, status, headers, body)
    asked = REQUEST_LINE.match(first)
    if asked:
        return Example(block.line, asked.group(1), asked.group(2), None, headers, body)
    if status and request is not None and block.adjacent:
        return Example(block.line, request.method, request.path, int(status.group(1)), headers, body)
    return f"{where}: cannot tell which operation this example belongs to: put it right after its request, or add a marker like <!-- contract: POST /api/queues 201 --> before it"


def placed_by_marker(block, where, status, headers, body):
    words = block.marker.split()
    if words and words[0].rstrip(",") == "none":
        return None
    if len(words) != 3 or words[0] not in METHODS:
        return f"{where}: unreadable marker {block.marker!r}: write 'METHOD /path NNN', 'METHOD /path request' or 'none, why'"
    method, path, side = words
    if side == "request":
        return Example(block.line, method, path, None, headers, body)
    if not side.isdigit() or (status and status.group(1) != side):
        return f"{where}: the marker's status {side} is not the example's"
    return Example(block.line, method, path, int(side), headers, body)


def examples(readme):
    """The README API section's examples, and the problems placing them."""
    lines, first = api_section(readme.split("\n"))
    found, problems, request = [], [], None
    for block in blocks(lines, first):
        if block.lang not in ("http", "json"):
            continue
        try:
            example = example_of(block, request)
        except ValueError as error:
            problems.append(str(error))
            continue
        if isinstance(example, str):
            problems.append(example)
        elif example is not None:
            found.append(example)
            request = example if example.status is None else request
    return found, problems


def operation(doc, method, path):
    """The documented (path, operation) a concrete or templated path
    reaches: the candidate with the most literal segments wins, like a
    router's most specific route."""
    segments = path.split("?")[0].strip("/").split("/")
    best = None
    for template, item in doc["paths"].items():
        parts = template.strip("/").split("/")
        if len(parts) != len(segments) or method.lower() not in item:
            continue
        literal = 0
        for part, segment in zip(parts, segments):
            if part.startswith("{"):
                continue
            if part != segment:
                break
            literal += 1
        else:
            if best is None or literal > best[0]:
                best = (literal, template, item[method.lower()])
    return (best[1], best[2]) if best else (None, None)


def area(path):
    """The part of a path that names its area: `/api/queues`, `/health`."""
    segments = path.split("?")[0].strip("/").split("/")
    return "/".join(segments[:2] if segments[0] in ("api", "webhooks") else segments[:1])


def resolve(doc, node):
    """A node with its `#/...` reference followed (responses are shared)."""
    while isinstance(node, dict) and "$ref" in node:
        target = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def elided(instance):
    """An elided value: a string with `…`, or an object with a `…` member."""
    return (isinstance(instance, str) and ELISION in instance) or (
        isinstance(instance, dict) and ELISION in instance
    )


def lenient(original, skip=False):
    """`original` keyword check, which an elided instance passes (`skip`),
    or meets without its `…` member."""

    def check(validator, value, instance, schema):
        if elided(instance):
            if skip:
                return
            if isinstance(instance, dict):
                instance = {k: v for k, v in instance.items() if k != ELISION}
        yield from original(validator, value, instance, schema)

    return check


KEYWORDS = Draft202012Validator.VALIDATORS


def one_of(validator, value, instance, schema):
    """`oneOf`, which an elided value meets like `anyOf`: with its details
    left out it may fit several of the alternatives."""
    check = KEYWORDS["anyOf"] if elided(instance) else KEYWORDS["oneOf"]
    yield from check(validator, value, instance, schema)


ExampleValidator = jsonschema.validators.extend(
    Draft202012Validator,
    {
        **{k: lenient(KEYWORDS[k], skip=True) for k in (
            "pattern", "format", "enum", "const", "minLength", "maxLength",
            "required", "minProperties", "dependentRequired")},
        **{k: lenient(KEYWORDS[k]) for k in (
            "properties", "additionalProperties", "unevaluatedProperties",
            "patternProperties", "propertyNames")},
        "oneOf": one_of,
    },
)


def schema_errors(doc, schema, instance):
    """What in `instance` breaks `schema`, whose `$ref`s point into the
    document's components."""
    root = {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": doc.get("components", {}), "allOf": [schema]}
    validator = ExampleValidator(root, format_checker=FormatChecker())
    return [describe(error) for error in validator.iter_errors(instance)]


def describe(error):
    """Where and why; when none of a `oneOf`/`anyOf` fits, why the closest
    alternative (the one with the fewest errors) does not (the message
    alone would repeat the whole body)."""
    while error.context:
        branches = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        error = min(branches.values(), key=len)[0]
    return f"{'/'.join(map(str, error.absolute_path)) or '(the body)'}: {error.message[:300]}"


def check_request(doc, op, example):
    problems = []
    if example.body is not None:
        body = resolve(doc, op.get("requestBody", {})).get("content", {}).get("application/json")
        if body is None:
            return ["the operation takes no JSON body"]
        problems += schema_errors(doc, body["schema"], example.body)
    params = [resolve(doc, p) for p in op.get("parameters", [])]
    named = {(p["in"], p["name"].lower()) for p in params}
    query = example.path.partition("?")[2]
    for pair in filter(None, query.split("&")):
        if ("query", pair.partition("=")[0].lower()) not in named:
            problems.append(f"query parameter {pair.partition('=')[0]!r} is not documented")
    for header in example.headers:
        if header not in ("authorization", "content-type") and ("header", header) not in named:
            problems.append(f"header {header!r} is not documented")
    return problems


def check_response(doc, op, example):
    answer = op["responses"].get(str(example.status))
    if answer is None:
        return [f"status {example.status} is not documented (documented: {', '.join(op['responses'])})"]
    content = resolve(doc, answer).get("content", {})
    media = example.headers.get("content-type", "application/json")
    if example.body is None:
        return []
    if media not in content:
        return [f"no {media} body is documented for {example.status}"]
    return schema_errors(doc, content[media].get("schema", {}), example.body)


def check(doc, example):
    """(problems, whether the operation is not in the contract yet)."""
    template, op = operation(doc, example.method, example.path)
    if op is None:
        documented = any(area(path) == area(example.path) for path in doc["paths"])
        if documented:
            return [f"{example.method} {example.path} is not an operation of the contract"], False
        return [], True
    side = check_request if example.status is None else check_response
    return side(doc, op, example), False


def main(args):
    readme_path = args[0] if args else os.path.join(ROOT, "README.md")
    doc_path = args[1] if len(args) > 1 else os.path.join(ROOT, "docs", "openapi.json")
    doc = json.load(open(doc_path, encoding="utf-8"))
    found, problems = examples(open(readme_path, encoding="utf-8").read())
    checked, pending = 0, []
    for example in found:
        what = f"README.md:{example.line}: {example.method} {example.path} " + (
            "request" if example.status is None else str(example.status))
        wrong, not_yet = check(doc, example)
        if not_yet:
            pending.append(what)
            continue
        checked += 1
        problems += [f"{what}: {problem}" for problem in wrong]
    for what in pending:
        print(f"check-readme-examples: operation not in the contract yet: {what}")
    print(f"check-readme-examples: {checked} examples checked against the contract, "
          f"{len(pending)} not in it yet, {len(problems)} problems")
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
