import random

import pytest

from parley.crypto import (
    MAX_SKIP,
    CryptoError,
    DecryptError,
    DuplicateMessage,
    PaddingError,
    RatchetNotReady,
    RatchetState,
    TooManySkipped,
    message_size,
)
from parley.crypto import ratchet_decrypt as decrypt
from parley.crypto import ratchet_encrypt as encrypt
from parley.crypto.header import ENCRYPTED_HEADER_SIZE

from .pairs import make_pair

PAD = 512


def send(state: RatchetState, text: bytes) -> tuple[RatchetState, bytes]:
    return encrypt(state, text, PAD)


def send_many(state: RatchetState, prefix: str, count: int) -> tuple[RatchetState, list[bytes]]:
    messages = []
    for i in range(count):
        state, message = send(state, f"{prefix}{i}".encode())
        messages.append(message)
    return state, messages


def receive(state: RatchetState, message: bytes, expected: bytes) -> RatchetState:
    state, plaintext = decrypt(state, message)
    assert plaintext == expected
    return state


def test_long_conversation_with_many_turns() -> None:
    alice, bob = make_pair()
    rng = random.Random(1)
    alice_keys_seen_by_bob: set[bytes | None] = set()
    sender_is_alice = True
    for _round in range(60):
        for _ in range(rng.randint(1, 5)):
            text = rng.randbytes(rng.randint(0, PAD - 2))
            if sender_is_alice:
                alice, message = send(alice, text)
                bob = receive(bob, message, text)
                alice_keys_seen_by_bob.add(bob.dhr)
            else:
                bob, message = send(bob, text)
                alice = receive(alice, message, text)
            assert len(message) == message_size(PAD)
        sender_is_alice = not sender_is_alice
    assert len(alice_keys_seen_by_bob) == 30  # a DH ratchet step on every turn
    assert alice.skipped == () and bob.skipped == ()


def test_every_message_has_the_same_length() -> None:
    alice, _ = make_pair()
    lengths = set()
    for size in (0, 1, 100, PAD - 2):
        alice, message = send(alice, bytes(size))
        lengths.add(len(message))
    assert lengths == {message_size(PAD)}
    with pytest.raises(PaddingError):
        send(alice, bytes(PAD - 1))


def test_initiator_cannot_send_first() -> None:
    alice, bob = make_pair()
    assert alice.can_send and not bob.can_send
    with pytest.raises(RatchetNotReady, match="receive"):
        send(bob, b"hello")
    assert issubclass(RatchetNotReady, CryptoError)
    alice, message = send(alice, b"hi")
    bob = receive(bob, message, b"hi")
    assert bob.can_send
    bob, reply = send(bob, b"hello")
    receive(alice, reply, b"hello")


def test_out_of_order_within_and_across_chains() -> None:
    alice, bob = make_pair()
    alice, a1 = send_many(alice, "a1-", 4)
    bob = receive(bob, a1[2], b"a1-2")  # skips a1-0, a1-1
    bob, b1 = send_many(bob, "b1-", 3)
    alice = receive(alice, b1[1], b"b1-1")
    alice, a2 = send_many(alice, "a2-", 4)  # a new chain for alice
    bob = receive(bob, a2[3], b"a2-3")  # skips a1-3 (via PN) and a2-0..2
    bob, b2 = send_many(bob, "b2-", 2)
    alice = receive(alice, b2[0], b"b2-0")

    pending = [(m, f"a1-{i}".encode()) for i, m in enumerate(a1) if i != 2]
    pending += [(m, f"a2-{i}".encode()) for i, m in enumerate(a2) if i != 3]
    random.Random(7).shuffle(pending)
    for message, text in pending:
        bob = receive(bob, message, text)
    assert bob.skipped == ()
    for i in (2, 0):
        alice = receive(alice, b1[i], f"b1-{i}".encode())
    alice = receive(alice, b2[1], b"b2-1")
    assert alice.skipped == ()


def test_duplicates_raise_and_leave_state_usable() -> None:
    alice, bob = make_pair()
    alice, batch = send_many(alice, "m", 5)
    order = [3, 0, 4, 1, 2]
    for i in order:
        bob = receive(bob, batch[i], f"m{i}".encode())
        for j in order[: order.index(i) + 1]:
            with pytest.raises(DuplicateMessage):
                decrypt(bob, batch[j])
    # and again after a turn, for the message that caused the DH ratchet step
    bob, reply = send(bob, b"r")
    alice = receive(alice, reply, b"r")
    with pytest.raises(DuplicateMessage):
        decrypt(alice, reply)
    alice, next_message = send(alice, b"next")
    bob = receive(bob, next_message, b"next")
    with pytest.raises(DuplicateMessage):
        decrypt(bob, next_message)
    bob, last = send(bob, b"last")
    receive(alice, last, b"last")


def test_duplicate_of_a_skipped_then_received_message_in_an_old_chain() -> None:
    alice, bob = make_pair()
    alice, old = send_many(alice, "old", 3)
    bob = receive(bob, old[2], b"old2")
    bob, reply = send(bob, b"r")
    alice = receive(alice, reply, b"r")
    alice, new = send(alice, b"new")
    bob = receive(bob, new, b"new")  # bob's old chain now only lives in the skipped store
    bob = receive(bob, old[0], b"old0")
    with pytest.raises(DuplicateMessage):
        decrypt(bob, old[0])
    bob = receive(bob, old[1], b"old1")  # chain's last skipped key: the chain is forgotten
    with pytest.raises(DecryptError):
        decrypt(bob, old[1])


def test_decrypt_does_not_mutate_input_state() -> None:
    alice, bob = make_pair()
    alice, message = send(alice, b"hello")
    before = bob.to_bytes()
    decrypt(bob, message)
    assert bob.to_bytes() == before
    again, plaintext = decrypt(bob, message)  # the caller may retry from the saved state
    assert plaintext == b"hello"
    assert again.nr == 1


def test_old_state_cannot_read_later_chains() -> None:
    alice, bob = make_pair()
    alice, message = send(alice, b"first")
    bob = receive(bob, message, b"first")
    old = RatchetState.from_bytes(bob.to_bytes())
    alice_messages = []
    for turn in range(3):
        bob, message = send(bob, f"b{turn}".encode())
        alice = receive(alice, message, f"b{turn}".encode())
        alice, message = send(alice, f"a{turn}".encode())
        bob = receive(bob, message, f"a{turn}".encode())
        alice_messages.append(message)
    alice, later = send(alice, b"later")
    # The saved state could still have received alice's very next chain (it was current
    # then), but nothing from the chains after further DH ratchet turns.
    assert decrypt(old, alice_messages[0])[1] == b"a0"
    for message in [*alice_messages[1:], later]:
        with pytest.raises(DecryptError):
            decrypt(old, message)
    receive(bob, later, b"later")


def test_current_state_cannot_read_consumed_past_messages() -> None:
    alice, bob = make_pair()
    alice, early = send(alice, b"early")
    bob = receive(bob, early, b"early")
    for _ in range(2):
        bob, message = send(bob, b"x")
        alice = receive(alice, message, b"x")
        alice, message = send(alice, b"y")
        bob = receive(bob, message, b"y")
    with pytest.raises(DecryptError):
        decrypt(bob, early)


@pytest.mark.parametrize("position", [0, 11, 12, 50, ENCRYPTED_HEADER_SIZE - 1])
def test_tampered_header(position: int) -> None:
    alice, bob = make_pair()
    alice, message = send(alice, b"hello")
    tampered = bytearray(message)
    tampered[position] ^= 0x80
    with pytest.raises(DecryptError):
        decrypt(bob, bytes(tampered))
    receive(bob, message, b"hello")


@pytest.mark.parametrize("offset", [0, 1, 100, PAD - 1, PAD, PAD + 15])
def test_tampered_body(offset: int) -> None:
    alice, bob = make_pair()
    alice, message = send(alice, b"hello")
    tampered = bytearray(message)
    tampered[ENCRYPTED_HEADER_SIZE + offset] ^= 0x01
    with pytest.raises(DecryptError):
        decrypt(bob, bytes(tampered))
    with pytest.raises(DecryptError):
        decrypt(bob, message[:-1])
    with pytest.raises(DecryptError):
        decrypt(bob, message + b"\x00")
    receive(bob, message, b"hello")


def test_swapped_header_rejected() -> None:
    alice, bob = make_pair()
    alice, one = send(alice, b"one")
    alice, two = send(alice, b"two")
    spliced = one[:ENCRYPTED_HEADER_SIZE] + two[ENCRYPTED_HEADER_SIZE:]
    with pytest.raises(DecryptError):
        decrypt(bob, spliced)


def test_other_conversation_rejected() -> None:
    alice, _ = make_pair()
    _, stranger = make_pair()
    alice, message = send(alice, b"hello")
    with pytest.raises(DecryptError):
        decrypt(stranger, message)


def test_state_round_trip() -> None:
    alice, bob = make_pair()
    alice, messages = send_many(alice, "m", 4)
    bob = receive(bob, messages[3], b"m3")  # leaves skipped keys in the state
    assert bob.skipped
    for state in (alice, bob):
        restored = RatchetState.from_bytes(state.to_bytes())
        assert restored == state
        assert restored.to_bytes() == state.to_bytes()
    bob = RatchetState.from_bytes(bob.to_bytes())
    bob = receive(bob, messages[1], b"m1")
    assert "secret" in repr(bob) and bob.rk.hex() not in repr(bob)


@pytest.mark.parametrize("data", [b"", b"\x90", b"not msgpack at all", b"\x81\xa2ad\x01"])
def test_corrupt_state_bytes(data: bytes) -> None:
    with pytest.raises(CryptoError):
        RatchetState.from_bytes(data)


def test_too_many_skipped() -> None:
    alice, bob = make_pair()
    alice, messages = send_many(alice, "m", MAX_SKIP + 2)
    with pytest.raises(TooManySkipped):
        decrypt(bob, messages[MAX_SKIP + 1])
    bob = receive(bob, messages[MAX_SKIP], f"m{MAX_SKIP}".encode())  # exactly MAX_SKIP is fine
    bob = receive(bob, messages[0], b"m0")
    bob = receive(bob, messages[MAX_SKIP + 1], f"m{MAX_SKIP + 1}".encode())


def test_too_many_skipped_in_previous_chain() -> None:
    alice, bob = make_pair()
    alice, message = send(alice, b"hi")
    bob = receive(bob, message, b"hi")
    bob, reply = send(bob, b"r")
    alice = receive(alice, reply, b"r")
    bob, lost = send_many(bob, "lost", MAX_SKIP + 1)  # same chain as reply, never delivered
    alice, message = send(alice, b"turn")
    bob = receive(bob, message, b"turn")
    bob, next_chain = send(bob, b"new chain")  # PN = MAX_SKIP + 2; alice has received 1
    with pytest.raises(TooManySkipped):
        decrypt(alice, next_chain)
    alice = receive(alice, lost[-2], f"lost{MAX_SKIP - 1}".encode())
    receive(alice, next_chain, b"new chain")


def test_skipped_store_is_bounded_and_evicts_oldest() -> None:
    alice, bob = make_pair()
    chains = []
    for turn in range(3):
        count = MAX_SKIP + 1 if turn < 2 else 6
        alice, batch = send_many(alice, f"c{turn}-", count)
        chains.append(batch)
        bob = receive(bob, batch[-1], f"c{turn}-{count - 1}".encode())
        bob, reply = send(bob, b"r")
        alice = receive(alice, reply, b"r")
    total = sum(len(chain.keys) for chain in bob.skipped)
    assert total == 2000
    assert min(bob.skipped[0].keys) == 5  # c0-0 .. c0-4 evicted, oldest first
    with pytest.raises(DuplicateMessage):
        decrypt(bob, chains[0][4])
    bob = receive(bob, chains[0][5], b"c0-5")
    bob = receive(bob, chains[2][0], b"c2-0")
