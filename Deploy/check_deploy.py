#!/usr/bin/env python3
"""Checks the operator files in Deploy/ against the Kubernetes API and against an `accm` binary.

    python3 Deploy/check_deploy.py [--accm PATH] [--kubernetes-version V]...

1. Kubernetes: every object in Deploy/kubernetes/**/*.yaml validates against the API's schemas, offline
   (kubernetes-validate, strict: an unknown field is an error), for each version asked (default: 1.30 and
   the newest the package ships); and the objects fit together: a Deployment's selector matches its pod
   labels, a Service selects some pods, every ConfigMap, Secret, key and volume a pod names exists, every
   $(VAR) in a command resolves, probes name a port of their container.
2. Command lines: every `accm` command line (the compose services' commands, the containers'
   command/args, the systemd units' ExecStart=, the Containerfile's ENTRYPOINT + CMD and RUN lines) names
   subcommands the binary has (`accm --help`, `accm cluster --help`, …) and only flags that
   `accm SUBCOMMAND --help` lists; an option with listed values (`--stage`) has one of them.
3. Ports: every port (containerPort, Service port/targetPort, probes, compose ports/expose/healthchecks,
   EXPOSE, --port, tcp:// endpoints) is 8000 (HTTP: gateway, serve), 5555 (the coordinator's workers) or
   5556 (its clients), and they agree: the coordinator binds --workers on 5555 and --clients on 5556, a
   worker's --coordinator is the coordinator's worker port, a gateway's (or client's) its client port, at a
   host that reaches the coordinator (a compose service / a Kubernetes Service selecting it, on that port);
   a container publishes the ports its process listens on and no other; a non-loopback coordinator has
   CURVE keys and so does every peer of it.

Prints one line per command line and a summary (`checked N manifests, M accm command lines, K flags, P
ports`); exits 1 with one line per problem when something does not hold, 2 when it cannot run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

try:
    import yaml
    import kubernetes_validate
    from kubernetes_validate import utils as kv_utils
except ImportError as error:  # pragma: no cover
    sys.exit(f"check_deploy.py needs PyYAML and kubernetes-validate (pip install kubernetes-validate pyyaml): {error}")

DEPLOY = Path(__file__).resolve().parent
ROOT = DEPLOY.parent
HTTP, WORKERS, CLIENTS = 8000, 5555, 5556
ALLOWED_PORTS = {HTTP, WORKERS, CLIENTS}
STAGES = ["vision", "caption", "selector", "decoder"]
WILDCARD_HOSTS = {"0.0.0.0", "*", "::", "[::]"}
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
# What the binary uses when a flag is not given (CoordinatorCommand, WorkerCommand, the contract).
DEFAULTS = {
    ("coordinator", "--workers"): "tcp://127.0.0.1:5555",
    ("coordinator", "--clients"): "tcp://127.0.0.1:5556",
    ("worker", "--coordinator"): "tcp://127.0.0.1:5555",
    ("gateway", "--coordinator"): "tcp://127.0.0.1:5556",
    ("ask", "--coordinator"): "tcp://127.0.0.1:5556",
    ("cluster status", "--coordinator"): "tcp://127.0.0.1:5556",
    ("gateway", "--port"): "8000",
    ("serve", "--port"): "8000",
    ("gateway", "--host"): "127.0.0.1",
    ("serve", "--host"): "127.0.0.1",
}
CLIENT_COMMANDS = {"gateway", "ask", "cluster status"}
ENDPOINT = re.compile(r"^tcp://(\[[^\]]+\]|[^:/\s]+):(\d+)$")


def rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


class Report:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.ports = 0

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def port(self, where: str, what: str, value) -> int | None:
        """Counts one port value and checks it is one of the system's three; returns it as an int."""
        self.ports += 1
        try:
            number = int(value)
        except (TypeError, ValueError):
            self.problem(where, f"{what} {value!r} is not a port number")
            return None
        if number not in ALLOWED_PORTS:
            self.problem(where, f"{what} {number} is not one of the system's ports "
                                f"({HTTP} HTTP, {WORKERS} coordinator workers, {CLIENTS} coordinator clients)")
        return number


# ---- the binary's --help ----------------------------------------------------------------------------


@dataclass
class Option:
    takes_value: bool
    values: list[str] | None


@dataclass
class Help:
    subcommands: list[str]
    options: dict[str, Option]


class Binary:
    def __init__(self, path: str) -> None:
        self.path = path
        self.cache: dict[tuple[str, ...], Help] = {}

    def help(self, path: tuple[str, ...]) -> Help:
        if path not in self.cache:
            try:
                run = subprocess.run([self.path, *path, "--help"], capture_output=True, text=True, timeout=60)
            except (OSError, subprocess.TimeoutExpired) as error:
                sys.exit(f"check_deploy.py: cannot run {self.path} {' '.join(path)} --help: {error}")
            if run.returncode != 0:
                sys.exit(f"check_deploy.py: {self.path} {' '.join(path)} --help exited {run.returncode}: {run.stderr.strip()}")
            self.cache[path] = parse_help(run.stdout)
        return self.cache[path]


def parse_help(text: str) -> Help:
    """Swift ArgumentParser's help: sections `NAME:` at column 0, entries at two spaces, their
    descriptions further in."""
    subcommands: list[str] = []
    options: dict[str, Option] = {}
    section = ""
    current: list[tuple[list[str], bool, list[str]]] = []  # (names, takes a value, description lines)
    for line in text.splitlines():
        header = re.match(r"^([A-Z][A-Z ]*):", line)
        if header:
            section = header.group(1)
            continue
        if section == "SUBCOMMANDS":
            entry = re.match(r"^  ([a-z][a-z0-9-]*)(\s|$)", line)
            if entry:
                subcommands.append(entry.group(1))
        elif section.endswith("OPTIONS") or section == "FLAGS":
            entry = re.match(r"^  (-\S.*?)(?:\s{2,}(.*))?$", line)
            if entry:
                head = entry.group(1)
                names = re.findall(r"(?<![\w-])(--?[A-Za-z0-9][A-Za-z0-9-]*)", head)
                current.append((names, "<" in head, [entry.group(2) or ""]))
            elif current and line.startswith("   "):
                current[-1][2].append(line.strip())
    for names, takes_value, description in current:
        text_ = " ".join(description)
        listed = re.search(r"\(values: ([^;)]*)[;)]", text_)  # "(values: a, b)" or "(values: a, b; default: a)"
        values = [v.strip() for v in listed.group(1).split(",")] if listed else None
        for name in names:
            options[name] = Option(takes_value, values)
    return Help(subcommands, options)


# ---- command lines ------------------------------------------------------------------------------------


@dataclass
class CommandLine:
    group: str  # compose, kubernetes, systemd, containerfile
    where: str
    argv: list[str]
    subcommand: str = ""  # "worker", "cluster status"; "" for the root
    known: bool = True  # the binary has the subcommand
    options: dict[str, list[str]] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def value(self, flag: str) -> str | None:
        given = self.options.get(flag)
        if given:
            return given[-1]
        return DEFAULTS.get((self.subcommand, flag))


def is_accm(program: str) -> bool:
    return os.path.basename(program) == "accm"


def check_command_line(line: CommandLine, binary: Binary, report: Report) -> int:
    """Checks one command line against the binary's help; fills line.subcommand / options. Returns the
    number of flags checked."""
    argv = line.argv
    path: list[str] = []
    i = 1
    while i < len(argv) and not argv[i].startswith("-"):
        listed = binary.help(tuple(path)).subcommands
        if not listed:
            break  # a positional argument of a leaf command
        if argv[i] not in listed:
            line.known = False
            shown = " ".join(["accm", *path, argv[i]])
            report.problem(line.where, f"`{shown}`: no such subcommand in this binary "
                                       f"(`{' '.join(['accm', *path])} --help` lists: {', '.join(listed)})")
            path.append(argv[i])
            i += 1
            break
        path.append(argv[i])
        i += 1
    line.subcommand = " ".join(path)
    help_ = binary.help(tuple(path)) if line.known else None
    flags = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if not token.startswith("-") or token == "-" or re.match(r"^-\d", token):
            continue  # a positional argument
        flags += 1
        name, equals, inline = token.partition("=")
        if help_ is None:  # unknown subcommand: read `--flag value` pairs as they look, for the port checks
            if equals:
                line.options.setdefault(name, []).append(inline)
            elif i < len(argv) and not argv[i].startswith("-"):
                line.options.setdefault(name, []).append(argv[i])
                i += 1
            else:
                line.options.setdefault(name, [])
            continue
        option = help_.options.get(name)
        if option is None:
            report.problem(line.where, f"`accm {line.subcommand}` has no flag {name} "
                                       f"(`accm {line.subcommand} --help` lists: {', '.join(sorted(help_.options))})")
            continue
        if not option.takes_value:
            if equals:
                report.problem(line.where, f"{name} is a flag without a value, given {token!r}")
            line.options.setdefault(name, [])
            continue
        if equals:
            value = inline
        elif i < len(argv):
            value = argv[i]
            i += 1
        else:
            report.problem(line.where, f"{name} needs a value")
            continue
        if option.values is not None and value not in option.values:
            report.problem(line.where, f"{name} {value!r}: not one of {', '.join(option.values)}")
        line.options.setdefault(name, []).append(value)
    return flags


# ---- interpolation ------------------------------------------------------------------------------------


def compose_interpolate(text: str, where: str, report: Report) -> str:
    """Compose's ${VAR:-default} etc., evaluated with nothing set (what a fresh checkout gives)."""
    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(5)
        operator, argument = match.group(3), match.group(4)
        if operator in (":-", "-"):
            return argument
        if operator in (":?", "?"):
            return f"<{name}>"
        return ""
    return re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)((:?[-?])(.*?))?\}|\$([A-Za-z_][A-Za-z0-9_]*)", replace, text)


def kubernetes_expand(text: str, env: dict[str, str], where: str, report: Report) -> str:
    """The kubelet's $(VAR) expansion in command and args ($$(VAR) stays literal)."""
    def replace(match: re.Match) -> str:
        if match.group(0).startswith("$$"):
            return match.group(0)[1:]
        name = match.group(1)
        if name not in env:
            report.problem(where, f"$({name}) is not defined in the container's env/envFrom (the kubelet would pass it literally)")
            return match.group(0)
        return env[name]
    return re.sub(r"\$\$\([A-Za-z_][A-Za-z0-9_]*\)|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", replace, text)


# ---- Kubernetes ---------------------------------------------------------------------------------------


def kubernetes_versions(asked: list[str] | None) -> list[str]:
    shipped = sorted({kv_utils.major_minor(v) for v in kv_utils.all_versions()},
                     key=lambda v: tuple(int(p) for p in v.split(".")))
    if asked:
        return asked
    return sorted({"1.30" if "1.30" in shipped else shipped[0], shipped[-1]},
                  key=lambda v: tuple(int(p) for p in v.split(".")))


def load_kubernetes(report: Report, versions: list[str]) -> tuple[list[Path], list[tuple[Path, dict]]]:
    files = sorted((DEPLOY / "kubernetes").rglob("*.yaml")) + sorted((DEPLOY / "kubernetes").rglob("*.yml"))
    objects: list[tuple[Path, dict]] = []
    for path in files:
        try:
            documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        except yaml.YAMLError as error:
            report.problem(rel(path), f"not YAML: {error}")
            continue
        if not documents:
            report.problem(rel(path), "holds no object")
        for document in documents:
            if not isinstance(document, dict) or "kind" not in document or "apiVersion" not in document:
                report.problem(rel(path), "an object without kind/apiVersion")
                continue
            name = f"{document['kind']} {document.get('metadata', {}).get('name', '?')}"
            if "namespace" in document.get("metadata", {}):
                report.problem(f"{rel(path)} ({name})", "sets a namespace (the manifests are applied with -n NAMESPACE)")
            for version in versions:
                try:
                    kubernetes_validate.validate(document, version, strict=True)
                except kubernetes_validate.ValidationError as error:
                    at = ".".join(str(p) for p in error.path) or "(top)"
                    report.problem(f"{rel(path)} ({name})", f"invalid against Kubernetes {version}: {at}: {error.message}")
                except kubernetes_validate.SchemaNotFoundError as error:
                    report.problem(f"{rel(path)} ({name})", error.message)
                except Exception as error:  # a version the package lacks, an unreadable schema
                    report.problem(f"{rel(path)} ({name})", f"cannot be validated against {version}: "
                                                            f"{getattr(error, 'message', error)}")
            objects.append((path, document))
    return files, objects


WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


def pod_templates(objects):
    for path, obj in objects:
        if obj["kind"] in WORKLOAD_KINDS:
            template = obj.get("spec", {}).get("template", {})
            yield path, obj, template.get("metadata", {}).get("labels", {}) or {}, template.get("spec", {}) or {}
        elif obj["kind"] == "Pod":
            yield path, obj, obj.get("metadata", {}).get("labels", {}) or {}, obj.get("spec", {}) or {}


def kubernetes_command_lines(objects, report: Report) -> list[CommandLine]:
    configmaps = {o["metadata"]["name"]: (o.get("data") or {}) for _, o in objects if o["kind"] == "ConfigMap"}
    secrets = {o["metadata"]["name"]: {**(o.get("data") or {}), **(o.get("stringData") or {})}
               for _, o in objects if o["kind"] == "Secret"}
    lines: list[CommandLine] = []
    for path, obj, labels, spec in pod_templates(objects):
        owner = f"{rel(path)} ({obj['kind']} {obj['metadata']['name']}"
        selector = (obj.get("spec", {}).get("selector") or {}).get("matchLabels")
        if obj["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}:
            if not selector or any(labels.get(k) != v for k, v in selector.items()):
                report.problem(owner + ")", f"selector {selector} does not match the pod labels {labels}")
        volumes = {v["name"]: v for v in spec.get("volumes", []) or []}
        for volume in volumes.values():
            if "secret" in volume:
                reference, store, kind = volume["secret"].get("secretName"), secrets, "Secret"
                items = volume["secret"].get("items") or []
            elif "configMap" in volume:
                reference, store, kind = volume["configMap"].get("name"), configmaps, "ConfigMap"
                items = volume["configMap"].get("items") or []
            else:
                continue
            if reference not in store:
                report.problem(owner + ")", f"volume {volume['name']}: no {kind} {reference} in Deploy/kubernetes")
                continue
            for item in items:
                if item["key"] not in store[reference]:
                    report.problem(owner + ")", f"volume {volume['name']}: {kind} {reference} has no key {item['key']}")
        for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
            where = f"{owner}, container {container['name']})"
            env: dict[str, str] = {}
            for source in container.get("envFrom", []) or []:
                if "configMapRef" in source:
                    name = source["configMapRef"]["name"]
                    if name not in configmaps:
                        report.problem(where, f"envFrom: no ConfigMap {name}")
                    env.update({(source.get("prefix") or "") + k: str(v) for k, v in configmaps.get(name, {}).items()})
                if "secretRef" in source:
                    name = source["secretRef"]["name"]
                    if name not in secrets:
                        report.problem(where, f"envFrom: no Secret {name}")
                    env.update({(source.get("prefix") or "") + k: f"<secret {name}>" for k in secrets.get(name, {})})
            for variable in container.get("env", []) or []:
                if "value" in variable:
                    env[variable["name"]] = kubernetes_expand(str(variable["value"]), env, where, report)
                    continue
                reference = (variable.get("valueFrom") or {})
                for key, store, kind in (("configMapKeyRef", configmaps, "ConfigMap"), ("secretKeyRef", secrets, "Secret")):
                    if key in reference:
                        name, item = reference[key]["name"], reference[key]["key"]
                        if item not in store.get(name, {}):
                            report.problem(where, f"env {variable['name']}: no key {item} in {kind} {name}")
                        env[variable["name"]] = str(store.get(name, {}).get(item, "")) if kind == "ConfigMap" else f"<secret {name}>"
                if variable["name"] not in env:
                    env[variable["name"]] = "<from the API>"
            for mount in container.get("volumeMounts", []) or []:
                if mount["name"] not in volumes:
                    report.problem(where, f"volumeMount {mount['name']}: no such volume in the pod")
            ports = {}
            for port in container.get("ports", []) or []:
                number = report.port(where, "containerPort", port.get("containerPort"))
                if port.get("name"):
                    ports[port["name"]] = number
                ports[number] = number
            for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = container.get(probe_name)
                if not probe:
                    continue
                for handler in ("httpGet", "tcpSocket", "grpc"):
                    if handler in probe:
                        target = probe[handler].get("port")
                        number = ports.get(target) if isinstance(target, str) and not target.isdigit() else int(target)
                        if number is None:
                            report.problem(where, f"{probe_name} names port {target!r}, not a port of the container")
                        else:
                            report.port(where, f"{probe_name} port", number)
                            if number not in ports:
                                report.problem(where, f"{probe_name} probes port {number}, which the container does not declare")
            argv = list(container.get("command") or [])
            args = list(container.get("args") or [])
            if argv:
                argv = argv + args
            elif "accm" in str(container.get("image", "")):
                argv = ["accm"] + args  # the image's ENTRYPOINT is accm
            argv = [kubernetes_expand(str(a), env, where, report) for a in argv]
            if argv and is_accm(argv[0]):
                line = CommandLine("kubernetes", where, argv)
                line.extra = {"ports": {p for p in ports.values() if p is not None}, "container": container,
                              "labels": labels, "spec": spec}
                lines.append(line)
    return lines


def kubernetes_services(objects, report: Report) -> dict[str, dict]:
    """Service name → {"ports": {port: target number}, "pods": [(labels, spec)]}."""
    templates = list(pod_templates(objects))
    services = {}
    for path, obj in objects:
        if obj["kind"] != "Service":
            continue
        name = obj["metadata"]["name"]
        where = f"{rel(path)} (Service {name})"
        selector = obj.get("spec", {}).get("selector") or {}
        selected = [(labels, spec) for _, _, labels, spec in templates
                    if selector and all(labels.get(k) == v for k, v in selector.items())]
        if not selected:
            report.problem(where, f"its selector {selector} selects no pods of Deploy/kubernetes")
        ports = {}
        for port in obj.get("spec", {}).get("ports", []) or []:
            number = report.port(where, "port", port.get("port"))
            target = port.get("targetPort", port.get("port"))
            resolved = set()
            for _, spec in selected:
                for container in spec.get("containers", []) or []:
                    for declared in container.get("ports", []) or []:
                        if target == declared.get("name") or str(target) == str(declared.get("containerPort")):
                            resolved.add(int(declared["containerPort"]))
            if not resolved:
                report.problem(where, f"targetPort {target!r} is no port of the pods it selects")
                continue
            for target_number in resolved:
                report.port(where, "targetPort", target_number)
                if target_number != number:
                    report.problem(where, f"port {number} goes to targetPort {target_number}: "
                                          f"every port of the system keeps its number end to end")
            ports[number] = resolved
        services[name] = {"ports": ports, "pods": selected, "where": where}
    return services


# ---- compose ------------------------------------------------------------------------------------------


def compose_command_lines(path: Path, entrypoint: list[str], report: Report) -> list[CommandLine]:
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        report.problem(rel(path), f"not YAML: {error}")
        return []
    services = document.get("services") or {}
    if not services:
        report.problem(rel(path), "no services")
    lines = []
    for name, service in services.items():
        where = f"{rel(path)} (service {name})"
        image = compose_interpolate(str(service.get("image", "")), where, report)
        build = service.get("build") or {}
        dockerfile = build.get("dockerfile", "") if isinstance(build, dict) else ""
        uses_accm = "accm" in image or dockerfile.endswith("Containerfile")
        if "entrypoint" in service:
            entry = service["entrypoint"]
            entry = shlex.split(entry) if isinstance(entry, str) else list(entry or [])
        else:
            entry = list(entrypoint) if uses_accm else []
        command = service.get("command") or []
        command = shlex.split(command) if isinstance(command, str) else [str(c) for c in command]
        argv = [compose_interpolate(a, where, report) for a in entry + command]
        listened_ports = set()
        for entry_ in service.get("ports", []) or []:
            if isinstance(entry_, dict):
                published, target = entry_.get("published", entry_.get("target")), entry_.get("target")
            else:
                text = compose_interpolate(str(entry_), where, report).split("/")[0]
                parts = text.split(":")
                published, target = (parts[-2] if len(parts) > 1 else parts[-1]), parts[-1]
            report.port(where, "published port", published)
            listened_ports.add(report.port(where, "container port", target))
        for entry_ in service.get("expose", []) or []:
            listened_ports.add(report.port(where, "exposed port", str(entry_).split("/")[0]))
        health = service.get("healthcheck") or {}
        test = health.get("test", [])
        test_text = test if isinstance(test, str) else " ".join(str(t) for t in test)
        probed = [int(p) for p in re.findall(r"/dev/tcp/[^/\s]+/(\d+)", test_text)]
        probed += [int(p) for p in re.findall(r"https?://[^/:\s]+:(\d+)", test_text)]
        for port in probed:
            report.port(where, "healthcheck port", port)
        if argv and is_accm(argv[0]):
            line = CommandLine("compose", where, argv)
            line.extra = {"service": name, "ports": listened_ports - {None}, "probed": set(probed),
                          "replicas": (service.get("deploy") or {}).get("replicas")}
            lines.append(line)
    return lines


# ---- systemd ------------------------------------------------------------------------------------------


def read_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    sections: dict[str, list[tuple[str, str]]] = {}
    section = ""
    pending = ""
    for raw in path.read_text().splitlines():
        if not pending and raw.lstrip().startswith(("#", ";")):
            continue
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        line = (pending + raw).strip()
        pending = ""
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            sections.setdefault(section, [])
        elif "=" in line:
            key, _, value = line.partition("=")
            sections.setdefault(section, []).append((key.strip(), value.strip()))
    return sections


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        env[key.strip()] = value
    return env


def systemd_command_lines(report: Report) -> tuple[list[Path], list[CommandLine]]:
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    lines: list[CommandLine] = []
    for path in units:
        sections = read_unit(path)
        service = dict((k, v) for k, v in sections.get("Service", []))
        where_unit = rel(path)
        for required in ("Restart", "ExecStart"):
            if required not in service:
                report.problem(where_unit, f"no {required}=")
        if service.get("Restart") != "always":
            report.problem(where_unit, "Restart= is not always")
        if service.get("NoNewPrivileges") != "yes" or service.get("ProtectSystem") != "strict":
            report.problem(where_unit, "wants the hardening NoNewPrivileges=yes and ProtectSystem=strict")
        if service.get("DynamicUser") != "yes" and not service.get("User"):
            report.problem(where_unit, "runs as root (neither DynamicUser=yes nor User=)")
        template = path.name.endswith("@.service")
        instances = STAGES if template else [""]
        for instance in instances:
            unit_name = path.name.replace("@.service", f"@{instance}.service") if template else path.name
            where = f"{where_unit} ({unit_name})" if template else where_unit

            def specifiers(text: str) -> str:
                return re.sub(r"%(.)", lambda m: {"i": instance, "I": instance, "d": f"/run/credentials/{unit_name}",
                                                  "n": unit_name, "H": "HOST", "%": "%"}.get(m.group(1), m.group(0)), text)

            env: dict[str, str] = {}
            for key, value in sections.get("Service", []):
                if key == "EnvironmentFile":
                    optional = value.startswith("-")
                    target = specifiers(value.lstrip("-"))
                    shipped = DEPLOY / "systemd" / os.path.basename(target)
                    if shipped.exists():
                        env.update(read_env_file(shipped))
                    elif not optional:
                        report.problem(where, f"EnvironmentFile={target}: no example {rel(shipped)} shipped beside the unit")
                elif key == "Environment":
                    for assignment in shlex.split(value):
                        k, _, v = assignment.partition("=")
                        env[k] = v
            for key, value in sections.get("Service", []):
                if not key.startswith("ExecStart"):
                    continue
                words = shlex.split(value)
                if not words:
                    continue
                words[0] = words[0].lstrip("-@:+!|")
                argv: list[str] = []
                for word in words:
                    whole = re.fullmatch(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", word)
                    split = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
                    if whole or split:
                        name = (whole or split).group(1)
                        if name not in env:
                            report.problem(where, f"{key}: ${{{name}}} is not set by its EnvironmentFile= examples")
                            argv.append(word)
                            continue
                        argv.extend([env[name]] if whole else env[name].split())
                    else:
                        argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), m.group(0)), word))
                argv = [specifiers(a) for a in argv]
                if argv and is_accm(argv[0]):
                    lines.append(CommandLine("systemd", f"{where} {key}", argv))
    return units, lines


def systemd_analyze(units: list[Path], report: Report) -> str:
    """systemd-analyze verify, where there is one (the missing /usr/local/bin/accm is not a problem here)."""
    tool = shutil.which("systemd-analyze")
    if not tool:
        return "systemd-analyze not found: units not verified by systemd"
    scratch = Path(os.environ.get("TMPDIR", "/tmp")) / f"accm-check-units-{os.getpid()}"
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        names = []
        for unit in units:
            (scratch / unit.name).write_text(unit.read_text())
            names.append(unit.name.replace("@.service", "@decoder.service"))
        run = subprocess.run([tool, "verify", "--man=no", *names], cwd=scratch, capture_output=True, text=True, timeout=60)
        for line in (run.stdout + run.stderr).splitlines():
            # Only what it says about these units (not about the machine it runs on), and not that the
            # binary is not installed at /usr/local/bin here.
            if "accm" not in line or "is not executable" in line or "/usr/local/bin/accm" in line:
                continue
            report.problem("Deploy/systemd", f"systemd-analyze verify: {line.replace(str(scratch), 'Deploy/systemd')}")
        return "systemd-analyze verify: run"
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"systemd-analyze verify could not run: {error}"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# ---- Containerfile ------------------------------------------------------------------------------------


def containerfile_command_lines(path: Path, report: Report) -> tuple[list[str], list[CommandLine]]:
    instructions = []
    pending, start = "", 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        if not pending and (raw.lstrip().startswith("#") or not raw.strip()):
            continue
        if not pending:
            start = number
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        instructions.append((start, (pending + raw).strip()))
        pending = ""
    entrypoint: list[str] = []
    cmd: list[str] = []
    lines = []
    stages = 0
    exposed = []
    for number, text in instructions:
        keyword, _, rest = text.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stages += 1
            entrypoint, cmd, exposed = [], [], []  # only the last stage's count
        elif keyword in ("ENTRYPOINT", "CMD"):
            try:
                value = json.loads(rest)
            except json.JSONDecodeError:
                report.problem(f"{rel(path)}:{number}", f"{keyword} in shell form (use the JSON form: signals reach accm)")
                value = shlex.split(rest)
            if keyword == "ENTRYPOINT":
                entrypoint = value
            else:
                cmd = value
        elif keyword == "EXPOSE":
            exposed = [(number, p.split("/")[0]) for p in rest.split()]
        elif keyword == "RUN" and not rest.startswith("["):
            for segment in re.split(r"&&|\|\||;|\|", rest):
                words = shlex.split(segment)
                if words and is_accm(words[0]):
                    lines.append(CommandLine("containerfile", f"{rel(path)}:{number} (RUN)", words))
    ports = set()
    for number, port in exposed:
        ports.add(report.port(f"{rel(path)}:{number}", "EXPOSE", port))
    if ports != ALLOWED_PORTS:
        report.problem(rel(path), f"EXPOSE {sorted(p for p in ports if p)}: the image serves {sorted(ALLOWED_PORTS)}")
    if not entrypoint or not is_accm(entrypoint[0]):
        report.problem(rel(path), f'ENTRYPOINT {entrypoint} is not ["accm"] (compose and kubernetes/ pass only arguments)')
    elif cmd:
        lines.append(CommandLine("containerfile", f"{rel(path)} (ENTRYPOINT + CMD)", entrypoint + cmd))
    return entrypoint or ["accm"], lines


# ---- ports and topology -------------------------------------------------------------------------------


def endpoint(line: CommandLine, flag: str, report: Report) -> tuple[str, int] | None:
    value = line.value(flag)
    if value is None:
        return None
    if value.startswith("ipc://") or value.startswith("inproc://"):
        return None
    match = ENDPOINT.match(value)
    if not match:
        report.problem(line.where, f"{flag} {value!r} is not tcp://HOST:PORT")
        return None
    port = report.port(line.where, flag, match.group(2))
    return match.group(1), port


def check_topology(group: str, lines: list[CommandLine], report: Report, services: dict | None = None) -> None:
    coordinators = [l for l in lines if l.subcommand == "coordinator"]
    if len(coordinators) > 1 and group != "containerfile":
        report.problem(coordinators[1].where, "a second coordinator: every worker and client must meet at one")
    binds = {}
    curve_on = False
    for line in coordinators:
        for flag, wanted, role in (("--workers", WORKERS, "workers"), ("--clients", CLIENTS, "clients")):
            bound = endpoint(line, flag, report)
            if bound is None:
                continue
            host, port = bound
            binds[role] = (host, port, line)
            if port is not None and port != wanted:
                report.problem(line.where, f"{flag} binds port {port}; the {role}' port is {wanted}")
            if group in ("compose", "kubernetes") and host not in WILDCARD_HOSTS:
                report.problem(line.where, f"{flag} binds {host}: in a container only a wildcard address (0.0.0.0) "
                                           f"is reachable from the other containers")
            if host not in LOOPBACK_HOSTS and "--curve-secret" not in line.options and "--insecure" not in line.options:
                report.problem(line.where, f"{flag} binds non-loopback {host} without --curve-secret (or --insecure)")
        curve_on = curve_on or "--curve-secret" in line.options
        if "ports" in line.extra:
            listening = {binds[r][1] for r in ("workers", "clients") if r in binds and binds[r][2] is line}
            check_listening(line, listening, report)
    for line in lines:
        role = line.subcommand
        if role in ("gateway", "serve"):
            port = line.value("--port")
            if port is not None:
                number = report.port(line.where, "--port", port)
                if number is not None and number != HTTP:
                    report.problem(line.where, f"--port {number}: the HTTP port is {HTTP}")
                if "ports" in line.extra and number is not None:
                    check_listening(line, {number}, report)
            host = line.value("--host")
            if group in ("compose", "kubernetes") and host is not None and host not in WILDCARD_HOSTS:
                report.problem(line.where, f"--host {host}: in a container only 0.0.0.0 is reachable from outside it")
        if role == "worker" or role in CLIENT_COMMANDS:
            wanted, bind_role = (WORKERS, "workers") if role == "worker" else (CLIENTS, "clients")
            target = endpoint(line, "--coordinator", report)
            if target is None:
                continue
            host, port = target
            if port is not None and port != wanted:
                report.problem(line.where, f"--coordinator port {port}: a {role} connects to the coordinator's "
                                           f"{bind_role} port, {wanted}")
            if bind_role in binds and port is not None and binds[bind_role][1] != port:
                report.problem(line.where, f"--coordinator port {port}, but the coordinator binds --{bind_role} "
                                           f"on {binds[bind_role][1]}")
            if curve_on and ("--curve-secret" not in line.options or "--coordinator-key" not in line.options):
                report.problem(line.where, "the coordinator requires CURVE: --curve-secret and --coordinator-key are missing")
            if "ports" in line.extra and role == "worker":
                check_listening(line, set(), report)
            check_host(group, line, host, port, coordinators, services, report)


def check_listening(line: CommandLine, listening: set, report: Report) -> None:
    declared = line.extra.get("ports", set())
    what = "a worker listens on nothing" if not listening else f"its process listens on {sorted(listening)}"
    if declared != listening:
        report.problem(line.where, f"declares/publishes ports {sorted(declared)}, but {what}")
    probed = line.extra.get("probed", set())
    if not probed <= listening:
        report.problem(line.where, f"its healthcheck probes {sorted(probed)}, but {what}")


def check_host(group, line, host, port, coordinators, services, report) -> None:
    if group == "compose":
        names = {c.extra.get("service") for c in coordinators}
        if host not in names:
            report.problem(line.where, f"--coordinator host {host!r} is not the compose service running the "
                                       f"coordinator ({', '.join(sorted(n for n in names if n)) or 'none'})")
    elif group == "kubernetes":
        name = host.split(".")[0]
        if services is None or name not in services:
            report.problem(line.where, f"--coordinator host {host!r} is no Service of Deploy/kubernetes")
            return
        service = services[name]
        if port not in service["ports"]:
            report.problem(line.where, f"Service {name} has no port {port}")
        selects_coordinator = any(
            c.extra.get("labels") is labels for c in coordinators for labels, _ in service["pods"])
        if not selects_coordinator:
            report.problem(line.where, f"Service {name} does not select the coordinator's pods")
    elif group == "systemd":
        for coordinator in coordinators:
            for flag in ("--workers", "--clients"):
                bound = coordinator.value(flag)
                match = ENDPOINT.match(bound or "")
                if match and int(match.group(2)) == port and match.group(1) not in WILDCARD_HOSTS \
                        and match.group(1) != host:
                    report.problem(line.where, f"connects to {host}:{port}, the coordinator binds {match.group(1)}:{port}")


def scan_endpoints(paths: list[Path], report: Report) -> None:
    """Every tcp:// endpoint written anywhere in the files (comments too) uses one of the three ports."""
    for path in paths:
        for number, text in enumerate(path.read_text().splitlines(), 1):
            for match in re.finditer(r"tcp://(\[[^\]]+\]|[A-Za-z0-9_.*-]+):(\d+)", text):
                report.port(f"{rel(path)}:{number}", "endpoint port", match.group(2))


# ---- main ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accm", default=str(ROOT / ".build/release/accm"), help="the accm binary (default: .build/release/accm)")
    parser.add_argument("--kubernetes-version", action="append", help="Kubernetes version to validate against (repeatable)")
    arguments = parser.parse_args()
    if not (os.path.isfile(arguments.accm) and os.access(arguments.accm, os.X_OK)):
        print(f"check_deploy.py: no accm binary at {arguments.accm} (build it, or pass --accm PATH)", file=sys.stderr)
        return 2
    binary = Binary(arguments.accm)
    report = Report()

    versions = kubernetes_versions(arguments.kubernetes_version)
    kubernetes_files, objects = load_kubernetes(report, versions)
    services = kubernetes_services(objects, report)
    containerfile = DEPLOY / "Containerfile"
    compose = DEPLOY / "docker-compose.yml"
    entrypoint, container_lines = containerfile_command_lines(containerfile, report)
    compose_lines = compose_command_lines(compose, entrypoint, report)
    kubernetes_lines = kubernetes_command_lines(objects, report)
    units, systemd_lines = systemd_command_lines(report)
    systemd_note = systemd_analyze(units, report)

    groups = {"containerfile": container_lines, "compose": compose_lines, "kubernetes": kubernetes_lines,
              "systemd": systemd_lines}
    flags = 0
    for group, lines in groups.items():
        for line in lines:
            before = len(report.problems)
            flags += check_command_line(line, binary, report)
            mark = "ok" if len(report.problems) == before else "PROBLEM"
            print(f"{mark:7} {line.where}: {shlex.join(line.argv)}")
        check_topology(group, lines, report, services if group == "kubernetes" else None)
    for group, wanted in (("compose", {"coordinator", "gateway", "worker"}), ("kubernetes", {"coordinator", "gateway", "worker"}),
                          ("systemd", {"coordinator", "gateway", "worker"})):
        found = {l.subcommand.split(" ")[0] for l in groups[group]}
        if not wanted <= found:
            report.problem(group, f"no {', '.join(sorted(wanted - found))} command line")
        stages = {l.value("--stage") for l in groups[group] if l.subcommand == "worker"}
        if stages != set(STAGES):
            report.problem(group, f"workers of stages {sorted(s for s in stages if s)}, not of every stage {STAGES}")
    env_files = sorted((DEPLOY / "systemd").glob("*.env"))
    scan_endpoints([containerfile, compose, *kubernetes_files, *units, *env_files], report)

    manifests = 1 + 1 + len(kubernetes_files) + len(units)
    command_lines = sum(len(l) for l in groups.values())
    print(f"kubernetes: {len(kubernetes_files)} files, {len(objects)} objects, validated (strict) against "
          f"{', '.join(versions)}; {systemd_note}")
    for problem in report.problems:
        print(f"problem: {problem}")
    print(f"checked {manifests} manifests, {command_lines} accm command lines, {flags} flags, {report.ports} ports"
          + (f": {len(report.problems)} problem(s)" if report.problems else ": all good"))
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
