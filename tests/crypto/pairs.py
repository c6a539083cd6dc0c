"""Helper: a joiner/initiator pair of ratchet states, set up exactly as two agents would."""

from parley.crypto import (
    RatchetState,
    X3DHKeyPair,
    init_initiator,
    init_joiner,
    initiator_agree,
    joiner_agree,
)

# (joiner = "Alice", initiator = "Bob")
Pair = tuple[RatchetState, RatchetState]


def make_pair() -> Pair:
    initiator_keys, joiner_keys = X3DHKeyPair.generate(), X3DHKeyPair.generate()
    # Only public keys cross between the two sides.
    initiator_public, joiner_public = initiator_keys.public(), joiner_keys.public()
    joiner = init_joiner(joiner_agree(joiner_keys, initiator_public), initiator_public)
    initiator = init_initiator(initiator_agree(initiator_keys, joiner_public), initiator_keys)
    return joiner, initiator
