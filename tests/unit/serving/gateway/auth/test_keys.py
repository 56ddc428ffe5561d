"""The keys file format and the key store's hot reload."""

from __future__ import annotations

import logging
import os

import pytest

from serving.gateway.auth.keys import KeysFileError, KeyStore, hash_key, key_id_of, parse_keys

SECRET = "sk-test-0123456789abcdef"
OTHER = "sk-test-fedcba9876543210"


def write(path, text):
    path.write_text(text)
    # A new mtime even on coarse filesystems.
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_plaintext_and_hashed_entries_are_stored_hashed():
    records = parse_keys(
        f"""
keys:
  - key: {SECRET}
    tier: pro
  - sha256: {hash_key(OTHER).upper()}
    id: batch
    limits: {{rpm: 5}}
"""
    )
    assert set(records) == {hash_key(SECRET), hash_key(OTHER)}
    pro = records[hash_key(SECRET)]
    assert pro.key_id == key_id_of(hash_key(SECRET)) and len(pro.key_id) == 8
    assert pro.tier == "pro"
    batch = records[hash_key(OTHER)]
    assert batch.key_id == "batch" and batch.limits.rpm == 5
    assert SECRET not in repr(records)


@pytest.mark.parametrize(
    "text",
    [
        f"keys: [{{key: {SECRET}, sha256: {hash_key(SECRET)}}}]",  # both
        "keys: [{tier: pro}]",  # neither
        "keys: [{sha256: abc}]",  # not a hash
        f"keys: [{{key: {SECRET}}}, {{sha256: {hash_key(SECRET)}}}]",  # duplicate
        f"keys: [{{key: {SECRET}, id: x}}, {{key: {OTHER}, id: x}}]",  # duplicate id
        f"keys: [{{key: {SECRET}, colour: red}}]",  # unknown field
        "keys: [unclosed",
    ],
)
def test_invalid_files_are_refused_without_echoing_keys(text):
    with pytest.raises(KeysFileError) as info:
        parse_keys(text)
    assert SECRET not in str(info.value) and OTHER not in str(info.value)


def test_store_looks_up_by_hash_and_skips_disabled(tmp_path):
    path = tmp_path / "keys.yaml"
    write(path, f"keys: [{{key: {SECRET}}}, {{key: {OTHER}, disabled: true}}]")
    store = KeyStore(path)
    assert store.lookup(SECRET).key_hash == hash_key(SECRET)
    assert store.lookup(OTHER) is None
    assert store.lookup("sk-wrong") is None
    assert store.by_id(key_id_of(hash_key(SECRET))) is not None


def test_store_reloads_after_interval_when_file_changes(tmp_path, clock):
    path = tmp_path / "keys.yaml"
    write(path, f"keys: [{{key: {SECRET}}}]")
    store = KeyStore(path, reload_interval_s=5, clock=clock)
    assert store.lookup(OTHER) is None
    write(path, f"keys: [{{key: {OTHER}}}]")
    clock.advance(1)
    assert store.lookup(OTHER) is None  # not checked yet
    clock.advance(5)
    assert store.lookup(OTHER) is not None
    assert store.lookup(SECRET) is None  # revoked
    assert store.reloads == 2


def test_kubernetes_style_symlink_swap_is_seen(tmp_path, clock):
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    (tmp_path / "v1" / "keys.yaml").write_text(f"keys: [{{key: {SECRET}}}]")
    (tmp_path / "v2" / "keys.yaml").write_text(f"keys: [{{key: {OTHER}}}]")
    (tmp_path / "..data").symlink_to("v1")
    path = tmp_path / "keys.yaml"
    path.symlink_to("..data/keys.yaml")
    store = KeyStore(path, reload_interval_s=1, clock=clock)
    assert store.lookup(SECRET) is not None
    tmp = tmp_path / "..data_tmp"
    tmp.symlink_to("v2")
    os.replace(tmp, tmp_path / "..data")
    clock.advance(2)
    assert store.lookup(OTHER) is not None and store.lookup(SECRET) is None


def test_bad_reload_keeps_old_keys_and_logs_no_key(tmp_path, clock, caplog):
    path = tmp_path / "keys.yaml"
    write(path, f"keys: [{{key: {SECRET}}}]")
    store = KeyStore(path, reload_interval_s=1, clock=clock)
    write(path, f"keys: [{{key: {OTHER}, tier: [oops]}}]")
    clock.advance(2)
    with caplog.at_level(logging.INFO):
        assert store.lookup(SECRET) is not None
    assert store.reload_errors == 1
    assert SECRET not in caplog.text and OTHER not in caplog.text


def test_missing_file_at_start_is_fatal(tmp_path):
    with pytest.raises(KeysFileError):
        KeyStore(tmp_path / "absent.yaml")
