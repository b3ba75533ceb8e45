"""RFC 6962 / 9162 Merkle hashing and proofs: reference vectors and properties."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.evidence.merkle import (
    EMPTY_ROOT,
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

# certificate-transparency merkle_tree_test vectors (leaf data, then roots of sizes 1..8).
CT_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f")]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = {
    (0, 8): ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    (5, 8): ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
}
LEAVES = [leaf_hash(d) for d in CT_LEAVES]


def test_empty_tree_is_sha256_of_nothing() -> None:
    """The empty tree's root is SHA-256 of the empty string."""
    assert root_of([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert CompactRange().root() == EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_rfc6962_roots(size: int) -> None:
    """Roots of the CT reference leaves match the published values, both ways of computing."""
    assert root_of(LEAVES[:size]).hex() == CT_ROOTS[size - 1]
    frontier = CompactRange()
    for h in LEAVES[:size]:
        frontier.append(h)
    assert frontier.root().hex() == CT_ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size"), sorted(CT_INCLUSION))
def test_rfc6962_inclusion_paths(index: int, size: int) -> None:
    """Audit paths match the CT reference and verify."""
    path = inclusion_proof(LEAVES[:size], index)
    assert [p.hex() for p in path] == CT_INCLUSION[(index, size)]
    assert verify_inclusion(LEAVES[index], index, size, path, root_of(LEAVES[:size]))


def test_rfc6962_consistency_2_to_8_starts_with_the_right_subtree() -> None:
    """The 2→8 proof is [hash(2..3), hash(4..7)] as in the CT reference and verifies."""
    proof = consistency_proof(LEAVES, 2)
    assert [p.hex() for p in proof] == [CT_INCLUSION[(0, 8)][1], CT_INCLUSION[(0, 8)][2]]
    assert verify_consistency(2, 8, root_of(LEAVES[:2]), root_of(LEAVES), proof)


trees = st.lists(st.binary(max_size=8), min_size=1, max_size=40).map(
    lambda xs: [leaf_hash(x + i.to_bytes(2, "big")) for i, x in enumerate(xs)])


@settings(max_examples=60, deadline=None)
@given(trees, st.data())
def test_every_inclusion_proof_verifies_and_any_alteration_fails(leaves: list[bytes],
                                                                 data: st.DataObject) -> None:
    """Proofs verify; a changed index, leaf, path element or root does not."""
    n = len(leaves)
    i = data.draw(st.integers(0, n - 1))
    root = root_of(leaves)
    proof = inclusion_proof(leaves, i)
    assert verify_inclusion(leaves[i], i, n, proof, root)
    assert not verify_inclusion(leaf_hash(b"forged"), i, n, proof, root)
    if n > 1:
        j = data.draw(st.integers(0, n - 1).filter(lambda j: j != i))
        assert not verify_inclusion(leaves[i], j, n, proof, root)
    if proof:
        k = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[k] = bytes([bad[k][0] ^ 1]) + bad[k][1:]
        assert not verify_inclusion(leaves[i], i, n, bad, root)
        assert not verify_inclusion(leaves[i], i, n, proof[:-1], root)
    assert not verify_inclusion(leaves[i], i, n, [*proof, root], root)


@settings(max_examples=60, deadline=None)
@given(trees, st.data())
def test_every_consistency_proof_verifies_and_any_alteration_fails(leaves: list[bytes],
                                                                   data: st.DataObject) -> None:
    """Consistency proofs verify between any two sizes; altered proofs or roots do not."""
    n = len(leaves)
    m = data.draw(st.integers(1, n))
    old_root, new_root = root_of(leaves[:m]), root_of(leaves)
    proof = consistency_proof(leaves, m)
    assert verify_consistency(m, n, old_root, new_root, proof)
    frontier = CompactRange()
    for h in leaves:
        frontier.append(h)
    assert frontier.root() == new_root
    forged_old = leaf_hash(b"fork")
    assert not verify_consistency(m, n, forged_old, new_root, proof)
    if m < n:
        assert not verify_consistency(m, n, old_root, forged_old, proof)
        k = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[k] = hashlib.sha256(bad[k]).digest()
        assert not verify_consistency(m, n, old_root, new_root, bad)
        assert not verify_consistency(m, n, old_root, new_root, proof[:-1])
