"""Open Images class names, aliases and hierarchy -> the output label of each class id (MID).

Only `Subcategory` (is-a) edges are followed, never `Part` (wheels, faces). A class reached from several
selected items belongs to the most specific one (the shortest Subcategory path); a tie between two
different labels is an error naming both.
"""

from __future__ import annotations

import csv
import difflib
import json
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from curate.core.errors import InputError
from curate.resources import resource

ROOT_MID = "/m/0bl9f"  # Entity
ALIASES_FILE = resource("manifests", "openimages-aliases.yaml")


def slug(name: str) -> str:
    """A filesystem-safe folder name: lower case, words joined by '_'."""
    s = re.sub(r"[^0-9a-zA-Z]+", "_", name.strip().lower()).strip("_")
    return s or "unnamed"


@dataclass
class ClassIndex:
    names: dict[str, str]  # MID -> display name
    children: dict[str, list[str]] = field(default_factory=dict)  # Subcategory edges
    parts: dict[str, list[str]] = field(default_factory=dict)  # Part edges (shown, never followed)

    @property
    def by_name(self) -> dict[str, str]:
        return {n.lower(): m for m, n in self.names.items()}

    @classmethod
    def load(cls, classes_csv: str | Path, hierarchy_json: str | Path | None = None) -> ClassIndex:
        names = read_classes_csv(classes_csv)
        idx = cls(names)
        if hierarchy_json is not None:
            idx.add_hierarchy(read_json(hierarchy_json))
        return idx

    def add_hierarchy(self, tree: dict) -> None:
        """Read the official MID-keyed hierarchy or FiftyOne's display-name copy of it."""
        by_name = self.by_name

        def mid_of(label: str) -> str:
            if label in self.names or label == ROOT_MID:
                return label
            if label.lower() == "entity":
                return ROOT_MID
            m = by_name.get(label.lower())
            if m is None:
                raise InputError(f"hierarchy names a class '{label}' that classes.csv lacks",
                                 "the metadata files are from different releases")
            return m

        stack = [tree]
        while stack:
            node = stack.pop()
            if not isinstance(node, dict) or "LabelName" not in node:
                raise InputError("hierarchy.json is malformed: a node has no LabelName",
                                 "re-download the Open Images metadata")
            me = mid_of(node["LabelName"])
            for kind, table in (("Subcategory", self.children), ("Part", self.parts)):
                for child in node.get(kind, []) or []:
                    cm = mid_of(child["LabelName"])
                    lst = table.setdefault(me, [])
                    if cm not in lst:
                        lst.append(cm)
                    stack.append(child)

    def name(self, mid: str) -> str:
        return "Entity" if mid == ROOT_MID else self.names.get(mid, mid)

    def descendants(self, mid: str) -> dict[str, int]:
        """MID -> shortest Subcategory depth below `mid` (0 for itself); each class once."""
        depth = {mid: 0}
        queue = deque([mid])
        while queue:
            m = queue.popleft()
            for c in self.children.get(m, []):
                if c not in depth:
                    depth[c] = depth[m] + 1
                    queue.append(c)
        return depth

    def specificity(self) -> dict[str, int]:
        """MID -> length of the longest Subcategory path from a top class down to it. A class always ranks
        above each of its parents (the shortest depth does not: Lobster is as shallow as Marine
        invertebrates, one of its parents), so this orders boxes of one object from specific to general."""
        parents: dict[str, list[str]] = {}
        for p, kids in self.children.items():
            for c in kids:
                parents.setdefault(c, []).append(p)
        rank: dict[str, int] = {}

        def visit(m: str, path: frozenset) -> int:
            if m not in rank:
                ups = [p for p in parents.get(m, []) if p not in path]  # a cycle is cut, never followed
                rank[m] = max((visit(p, path | {m}) + 1 for p in ups), default=0)
            return rank[m]

        for m in [*self.names, ROOT_MID]:
            visit(m, frozenset())
        return rank

    def search(self, pattern: str = "") -> list[str]:
        pat = pattern.lower()
        return sorted((m for m, n in self.names.items() if pat in n.lower()), key=lambda m: self.names[m])


def read_classes_csv(path: str | Path) -> dict[str, str]:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} not found", "the Open Images metadata/classes.csv is required")
    names: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for i, row in enumerate(csv.reader(f), 1):
            if not row:
                continue
            if len(row) != 2 or not row[0].startswith("/m/"):
                if i == 1 and row and row[0].lower() in ("labelname", "mid"):
                    continue  # tolerate a header
                raise InputError(f"{path}:{i}: expected 'MID,DisplayName', got {row!r}",
                                 "is this the Open Images class-descriptions file?")
            names[row[0]] = row[1]
    if not names:
        raise InputError(f"{path} lists no classes", "re-download the Open Images metadata")
    return names


def read_json(path: str | Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path} not found", "the Open Images metadata/hierarchy.json is required") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path} is not valid JSON: {e}", "re-download the Open Images metadata") from e


def load_aliases(path: str | Path = ALIASES_FILE) -> dict[str, list[str]]:
    if not Path(path).exists():
        return {}
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return {str(k).lower(): [str(v) for v in (vals if isinstance(vals, list) else [vals])]
            for k, vals in (data.get("aliases") or {}).items()}


@dataclass
class Selection:
    """The resolved --classes: output label of each selected MID, and how it got there."""

    label_of: dict[str, str]  # MID -> output label (folder name)
    depth_of: dict[str, int]  # MID -> depth below the item that claimed it
    items: dict[str, list[str]]  # output label -> root MIDs of that item

    @property
    def labels(self) -> list[str]:
        return list(self.items)

    def expansion(self, index: ClassIndex) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {lab: [] for lab in self.items}
        for mid, lab in self.label_of.items():
            out[lab].append(index.name(mid))
        return {lab: sorted(v) for lab, v in out.items()}


def _lookup(index: ClassIndex, name: str, aliases: dict[str, list[str]]) -> list[str]:
    by_name = index.by_name
    key = name.strip().lower()
    if key in by_name:
        return [by_name[key]]
    if key in aliases:
        mids = []
        for target in aliases[key]:
            m = by_name.get(target.lower())
            if m is None:
                raise InputError(f"alias '{name}' names unknown class '{target}'",
                                 "fix manifests/openimages-aliases.yaml")
            mids.append(m)
        return mids
    if key == "entity":
        return [ROOT_MID]
    choices = sorted(set(list(by_name) + list(aliases)))
    close = difflib.get_close_matches(key, choices, n=4, cutoff=0.6)
    hint = f"did you mean: {', '.join(close)}?" if close else "list them with: curate openimages --list-classes PATTERN"
    raise InputError(f"unknown Open Images class '{name}'", hint)


def parse_items(spec: str) -> list[tuple[str, list[str]]]:
    """'person,animal,weapon=Rifle+Handgun' -> [(label, [names…]), …]."""
    items = []
    for raw in spec.split(","):
        raw = raw.strip()
        if not raw:
            continue
        if "=" in raw:
            label, rhs = raw.split("=", 1)
            names = [n.strip() for n in rhs.split("+") if n.strip()]
            if not label.strip() or not names:
                raise InputError(f"bad group '{raw}'", "write it as label=ClassA+ClassB")
            items.append((slug(label), names))
        else:
            items.append((slug(raw), [raw]))
    if not items:
        raise InputError("--classes is empty", "e.g. --classes person,animal,gun")
    labels = [lab for lab, _ in items]
    dup = sorted({lab for lab in labels if labels.count(lab) > 1})
    if dup:
        raise InputError(f"label {dup[0]} is given twice in --classes", "merge them with label=A+B")
    return items


def resolve(spec: str, index: ClassIndex, aliases: dict[str, list[str]] | None = None) -> Selection:
    aliases = load_aliases() if aliases is None else aliases
    items: dict[str, list[str]] = {}
    claims: dict[str, dict[str, int]] = {}  # MID -> {label: depth}
    for label, names in parse_items(spec):
        roots: list[str] = []
        for n in names:
            roots += [m for m in _lookup(index, n, aliases) if m not in roots]
        items[label] = roots
        for r in roots:
            for mid, d in index.descendants(r).items():
                if mid != ROOT_MID:
                    by_label = claims.setdefault(mid, {})
                    by_label[label] = min(d, by_label.get(label, d))
    label_of: dict[str, str] = {}
    depth_of: dict[str, int] = {}
    for mid, by_label in claims.items():
        best = min(by_label.values())
        winners = sorted(lab for lab, d in by_label.items() if d == best)
        if len(winners) > 1:
            if best == 0:  # both items name it (an alias and the class, or two groups): adding it cannot help
                raise InputError(f"class '{index.name(mid)}' is named by both '{winners[0]}' and '{winners[1]}'",
                                 "name each class once in --classes, or group the items with label=A+B")
            raise InputError(
                f"class '{index.name(mid)}' is reached from both '{winners[0]}' and '{winners[1]}' "
                "at the same depth",
                f"select it explicitly (add '{index.name(mid)}' to --classes) or group the items with label=A+B",
            )
        label_of[mid], depth_of[mid] = winners[0], best
    return Selection(label_of, depth_of, items)
