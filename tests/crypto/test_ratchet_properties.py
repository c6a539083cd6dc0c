from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from parley.crypto import (
    CryptoError,
    DecryptError,
    DuplicateMessage,
    RatchetState,
    message_size,
)
from parley.crypto import ratchet_decrypt as decrypt
from parley.crypto import ratchet_encrypt as encrypt

from .pairs import make_pair

PAD = 128
# Built once: hypothesis examples only read these states, so sharing them is safe.
ALICE, BOB = make_pair()
ALICE_AFTER, HELLO = encrypt(ALICE, b"hello", PAD)
BOB_AFTER, _ = decrypt(BOB, HELLO)


@given(st.binary(max_size=2 * message_size(PAD)))
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_garbage_raises_only_crypto_errors(data: bytes) -> None:
    for state in (ALICE, BOB, ALICE_AFTER, BOB_AFTER):
        with pytest.raises(CryptoError):
            decrypt(state, data)


@given(st.integers(min_value=0, max_value=message_size(PAD) - 1), st.integers(1, 255))
def test_any_single_byte_change_is_rejected(position: int, flip: int) -> None:
    tampered = bytearray(HELLO)
    tampered[position] ^= flip
    with pytest.raises(DecryptError):
        decrypt(BOB, bytes(tampered))


@dataclass
class Party:
    state: RatchetState
    # messages sent by this party and not yet delivered: (ciphertext, plaintext)
    in_flight: list[tuple[bytes, bytes]] = field(default_factory=list)
    delivered: list[bytes] = field(default_factory=list)
    sent: int = 0


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_random_conversation_with_reordering_and_replays(data: st.DataObject) -> None:
    alice_state, bob_state = make_pair()
    parties = {"alice": Party(alice_state), "bob": Party(bob_state)}
    other = {"alice": "bob", "bob": "alice"}
    names = st.sampled_from(["alice", "bob"])
    kinds = st.sampled_from(["send", "send", "deliver", "deliver", "replay"])
    steps = data.draw(st.lists(st.tuples(kinds, names), min_size=10, max_size=80))
    for step, name in [*steps, ("flush", "alice"), ("flush", "bob")]:
        if step == "send" and not parties[name].state.can_send:
            name = other[name]
        if step == "deliver" and not parties[name].in_flight:
            name = other[name]
        me, peer = parties[name], parties[other[name]]
        if step == "send" and me.state.can_send:
            text = f"{name}-{me.sent}".encode()
            me.state, message = encrypt(me.state, text, PAD)
            me.in_flight.append((message, text))
            me.sent += 1
        elif step == "deliver" and me.in_flight:
            index = data.draw(st.integers(0, len(me.in_flight) - 1))
            message, text = me.in_flight.pop(index)
            skipped_before = sum(len(c.keys) for c in peer.state.skipped)
            peer.state, plaintext = decrypt(peer.state, message)
            assert plaintext == text
            me.delivered.append(message)
            if sum(len(c.keys) for c in peer.state.skipped) < skipped_before:
                event("delivered from skipped keys")
        elif step == "replay" and me.delivered:
            message = data.draw(st.sampled_from(me.delivered))
            # A replay is DuplicateMessage while its chain's header key is still known,
            # DecryptError once the chain is forgotten; never anything else.
            with pytest.raises((DuplicateMessage, DecryptError)) as error:
                decrypt(peer.state, message)
            event(f"replay: {error.type.__name__}")
        elif step == "flush":
            order = data.draw(st.permutations(range(len(me.in_flight))))
            for index in order:
                message, text = me.in_flight[index]
                peer.state, plaintext = decrypt(peer.state, message)
                assert plaintext == text
            me.in_flight.clear()
    for party in parties.values():
        assert party.in_flight == []
        assert party.state.skipped == ()
