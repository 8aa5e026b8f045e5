"""Class resolution against the real Open Images V7 class list and hierarchy."""

from __future__ import annotations

import pytest

from curate.core.errors import InputError
from curate.sources.classes import ClassIndex, load_aliases, parse_items, resolve


@pytest.fixture(scope="module")
def index(shared_openimages):
    return ClassIndex.load(shared_openimages / "class-descriptions-boxable.csv",
                           shared_openimages / "bbox_labels_600_hierarchy.json")


def names(index, sel, label):
    return set(sel.expansion(index)[label])


def test_official_and_fiftyone_hierarchies_agree(index, shared_openimages):
    fo = ClassIndex.load(shared_openimages / "class-descriptions-boxable.csv",
                         shared_openimages / "fiftyone-hierarchy.json")
    assert fo.children == index.children
    assert fo.parts == index.parts
    assert len(index.names) == 601


def test_animal_has_110_descendants_through_subcategory(index):
    assert len(index.descendants(index.by_name["animal"])) - 1 == 110


def test_person_children_and_not_an_animal(index):
    person = index.by_name["person"]
    kids = {index.name(m) for m in index.children[person]}
    assert kids == {"Boy", "Girl", "Man", "Woman"}
    assert person not in index.descendants(index.by_name["animal"])


def test_parts_are_never_followed(index):
    person = index.by_name["person"]
    assert index.parts.get(person), "Person has Part edges (faces, hands) in the real hierarchy"
    sel = resolve("person", index, aliases={})
    assert names(index, sel, "person") == {"Person", "Boy", "Girl", "Man", "Woman"}
    assert not any(n.startswith("Human") for n in names(index, sel, "person"))


def test_weapon_children(index):
    sel = resolve("weapon", index, aliases={})
    assert names(index, sel, "weapon") - {"Weapon"} == {
        "Axe", "Bomb", "Bow and arrow", "Cannon", "Dagger", "Handgun", "Knife", "Missile", "Rifle",
        "Shotgun", "Sword", "Tank"}


def test_gun_is_an_alias_not_a_class(index):
    assert "gun" not in index.by_name
    sel = resolve("person,animal,gun", index, aliases=load_aliases())
    assert names(index, sel, "gun") == {"Handgun", "Rifle", "Shotgun"}
    assert sel.labels == ["person", "animal", "gun"]
    assert len(names(index, sel, "animal")) == 111


def test_most_specific_label_wins(index):
    sel = resolve("animal,cat", index, aliases={})
    cat = index.by_name["cat"]
    assert sel.label_of[cat] == "cat"
    assert sel.label_of[index.by_name["dog"]] == "animal"


def test_multi_parent_class_reached_twice_at_same_depth_is_an_error(index):
    with pytest.raises(InputError) as e:
        resolve("kitchen utensil,weapon", index, aliases={})
    assert "Knife" in str(e.value) and "kitchen_utensil" in str(e.value) and "weapon" in str(e.value)
    # naming the class explicitly settles it
    sel = resolve("kitchen utensil,weapon,knife", index, aliases={})
    assert sel.label_of[index.by_name["knife"]] == "knife"


def test_multi_parent_expansion_dedupes(index):
    sel = resolve("tool", index, aliases={})  # Knife is reachable twice below Tool? each class once
    exp = sel.expansion(index)["tool"]
    assert len(exp) == len(set(exp))


def test_explicit_group(index):
    sel = resolve("firearm=Rifle+Handgun,blade=Knife+Sword+Dagger", index, aliases={})
    assert names(index, sel, "firearm") == {"Rifle", "Handgun"}
    assert names(index, sel, "blade") == {"Knife", "Sword", "Dagger"}


def test_unknown_class_suggests_close_matches(index):
    with pytest.raises(InputError) as e:
        resolve("persn", index, aliases={})
    assert "persn" in str(e.value) and "person" in str(e.value).lower()


@pytest.mark.parametrize("spec", ["", " , ", "a=", "=Rifle", "cat,Cat"])
def test_bad_specs(spec):
    with pytest.raises(InputError):
        parse_items(spec)


def test_every_alias_names_real_classes(index):
    for alias, targets in load_aliases().items():
        for t in targets:
            assert t.lower() in index.by_name, f"alias {alias} -> {t} is not an Open Images class"


def test_malformed_classes_csv(tmp_path):
    p = tmp_path / "classes.csv"
    p.write_text("this is not,a class,list\n")
    with pytest.raises(InputError, match="MID,DisplayName"):
        ClassIndex.load(p)


@pytest.mark.parametrize("spec", ["people,person", "pistol,handgun", "cat,felis=Cat"])
def test_a_class_named_by_two_items_gets_a_hint_that_helps(index, spec):
    with pytest.raises(InputError) as e:
        resolve(spec, index, aliases=load_aliases())
    assert "add '" not in str(e.value), "it is already in --classes: adding it again cannot settle the tie"
    assert "once" in str(e.value)
