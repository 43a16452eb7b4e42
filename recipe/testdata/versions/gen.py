#!/usr/bin/env python3
"""Generates the golden version vectors of package recipe.

This is NOT run by the tests: it is how the vectors were produced, so that
the Go implementation is checked against Python's own json.dumps and
hashlib.md5, not against itself. It re-implements, from the behaviour
described in docs/reference.md section 8.3, Marin's executor versioning
(ExecutorStep, InputName, OutputName, VersionedValue, compute_version) with
plain dataclasses, builds the same pipelines as versions_test.go, and writes
one JSON file per case:

    {"case": ..., "prefix": ..., "steps": [
        {"name": ..., "version": <json.dumps(version, sort_keys=True)>,
         "hash6": <md5(version)[:6]>, "output_path": <prefix/name-hash6>}]}

Regenerate with:  python3 recipe/testdata/versions/gen.py
A changed vector invalidates every user's cache: review before committing.
"""

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

PREFIX = "gs://marin-test/prefix"


@dataclass(frozen=True, eq=False)
class Step:
    name: str
    config: Any


@dataclass(frozen=True)
class InputName:
    step: Any
    name: Any
    block_on_step: bool = True

    def cd(self, name):
        return InputName(self.step, os.path.join(self.name, name) if self.name else name, self.block_on_step)

    def nonblocking(self):
        return dataclasses.replace(self, block_on_step=False)


def output_path_of(step, name=None):
    return InputName(step, name)


def hardcoded(path):
    return InputName(None, path)


@dataclass(frozen=True)
class OutputName:
    name: Any


@dataclass(frozen=True)
class Versioned:
    value: Any


def collect(obj):
    deps, pseudo, version = [], [], {}

    def rec(obj, prefix):
        new_prefix = prefix + "." if prefix else ""
        if isinstance(obj, Versioned):
            version[prefix] = obj.value
        elif isinstance(obj, InputName):
            if obj.step is not None:
                index = len(deps) + len(pseudo)
                (deps if obj.block_on_step else pseudo).append(obj.step)
                version[prefix] = f"DEP[{index}]" + ("/" + obj.name if obj.name else "")
            else:
                version[prefix] = obj.name
        elif is_dataclass(obj):
            for f in fields(obj):
                rec(getattr(obj, f.name), new_prefix + f.name)
        elif isinstance(obj, list):
            for i, x in enumerate(obj):
                rec(x, new_prefix + f"[{i}]")
        elif isinstance(obj, dict):
            for k, x in obj.items():
                assert isinstance(k, str)
                rec(x, new_prefix + k)

    rec(obj, "")
    return deps, pseudo, version


# INLINE_DEPTH: current Marin inlines a dependency's version only if the
# dependency's chain depth is at most 4 and refers to deeper ones by
# "name-hash6" (reference section 8.3); None is the older rule, which inlined
# every dependency. Chain depth: 0 without blocking dependencies, else 1 +
# the largest depth among them.
INLINE_DEPTH = 4


def hash6(version):
    return hashlib.md5(json.dumps(version, sort_keys=True).encode()).hexdigest()[:6]


def compute(step, versions, order, depths, rule):
    if step in versions:
        return versions[step]
    deps, pseudo, config = collect(step.config)
    for d in deps:
        compute(d, versions, order, depths, rule)
    for d in pseudo:
        compute(d, versions, order, depths, rule)

    def ref(d):
        if rule is not None and depths[d] > rule:
            return f"{d.name}-{hash6(versions[d])}"
        return versions[d]

    version = {"name": step.name, "config": config, "dependencies": [ref(d) for d in deps]}
    if pseudo:
        version["pseudo_dependencies"] = [ref(d) for d in pseudo]
    versions[step] = version
    depths[step] = 1 + max((depths[d] for d in deps), default=-1)
    order.append(step)
    return version


def case(name, *roots, rule=INLINE_DEPTH):
    versions, order, depths = {}, [], {}
    for r in roots:
        compute(r, versions, order, depths, rule)
    steps = []
    seen = set()
    for s in order:
        v = json.dumps(versions[s], sort_keys=True)
        if v in seen:
            continue
        seen.add(v)
        h = hashlib.md5(v.encode()).hexdigest()[:6]
        steps.append({"name": s.name, "version": v, "hash6": h, "output_path": f"{PREFIX}/{s.name}-{h}"})
    out = {"case": name, "prefix": PREFIX, "steps": steps}
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".json")
    with open(path, "w") as f:
        json.dump(out, f, indent=2, sort_keys=True)
        f.write("\n")


# --- the cases; versions_test.go builds the same pipelines in Go ---------


# basic: reference scenario 60.
@dataclass(frozen=True)
class BConfig:
    input_path: Any
    output_path: Any
    n: Any
    m: Any


a = Step("a", None)
b = Step("b", BConfig(output_path_of(a, "sub"), OutputName(None), Versioned(3), 4))
case("basic", b)


# values: every kind of versioned value, nested structs, lists and maps.
@dataclass(frozen=True)
class Optim:
    lr: Any
    betas: Any
    schedule: Any


@dataclass(frozen=True)
class Model:
    layers: Any
    act: Any
    dropout: Any


@dataclass(frozen=True)
class TrainConfig:
    data: Any
    model: Any
    optim: Any
    tags: Any
    extra: Any
    seed: Any
    note: Any
    big: Any
    nothing: Any
    flag: Any


data = Step("data/raw", Versioned("https://example.com/corpus.tar <v2> & more"))
train = Step(
    "train/lm",
    TrainConfig(
        data=output_path_of(data, "tokens").cd("train"),
        model=Model(layers=[Versioned(12), Versioned(24)], act=Versioned("gelu"), dropout=0.1),
        optim=Optim(lr=Versioned(3e-4), betas=Versioned([0.9, 0.95]), schedule=Versioned({"warmup": 1000, "decay": "cosine", "min": 1e-05})),
        tags={"a_first": Versioned("x"), "b_second": Versioned(True), "c_plain": "ignored"},
        extra=[{"k": Versioned(1.0)}, {"k": Versioned(-0.0)}],
        seed=Versioned(12345678901234567890),
        note=Versioned("caf\u00e9 \U0001F600 \"q\" \\ \n"),
        big=Versioned(1e20),
        nothing=Versioned(None),
        flag=Versioned(False),
    ),
)
case("values", train)


# paths: hard-coded inputs, joined sub-paths, an own output with a sub-path.
@dataclass(frozen=True)
class PathsConfig:
    raw: Any
    abs: Any
    url: Any
    joined: Any
    out: Any


paths = Step(
    "paths",
    PathsConfig(
        raw=hardcoded("raw/data"),
        abs=hardcoded("/abs/data"),
        url=hardcoded("gs://other/data").cd("x"),
        joined=hardcoded("raw").cd("a/b"),
        out=OutputName("ckpt"),
    ),
)
case("paths", paths)


# pseudo: a root-level non-blocking input (scenario 68) and a mixed step
# whose DEP indices interleave blocking and non-blocking references and
# reference one step twice.
parent = Step("parent", Versioned("p"))
child = Step("child", output_path_of(parent, "ckpt.pt").nonblocking())
other = Step("other", None)


@dataclass(frozen=True)
class MixedConfig:
    first: Any
    ckpt: Any
    again: Any


mixed = Step("mixed", MixedConfig(output_path_of(other), output_path_of(parent).nonblocking(), output_path_of(other, "x")))
case("pseudo", child, mixed)


# chain: a list-rooted config and a three-step chain with sub-paths.
@dataclass(frozen=True)
class TokConfig:
    input: Any
    tokenizer: Any
    workers: Any


src = Step("chain/src", {"url": Versioned("s3://bucket/src")})
tok = Step("chain/tok", TokConfig(output_path_of(src, "docs"), Versioned("gpt2"), 8))
merge = Step("chain/merge", [output_path_of(tok, "train"), output_path_of(tok, "valid"), Versioned(2)])
case("chain", merge)


# deep: a 7-step chain, the issue 10 example: c6 is the first step that
# refers to its dependency (c5, depth 5) by name-hash6. deep-legacy is the
# same chain under the older rule, which inlines every dependency. deepfan:
# a step with a shallow and a deep dependency, and a deep pseudo-dependency.
def chain(n):
    steps = [Step("deep/c0", {"k": Versioned(0)})]
    for i in range(1, n):
        steps.append(Step(f"deep/c{i}", {"in": output_path_of(steps[-1]), "k": Versioned(i)}))
    return steps


case("deep", chain(7)[-1])
case("deep-legacy", chain(7)[-1], rule=None)
deep = chain(8)
shallow = Step("fan/shallow", {"k": Versioned("s")})
fan = Step("fan/join", {"a": output_path_of(shallow), "b": output_path_of(deep[-1], "x"), "c": output_path_of(deep[5]).nonblocking()})
case("deepfan", fan)
