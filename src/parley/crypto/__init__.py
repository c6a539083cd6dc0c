"""parley.crypto: pure cryptographic functions (padding, queue box, X3DH, Double Ratchet).

No I/O and no knowledge of queues or chats. See docs/crypto.md for the exact formats.
"""

from parley.crypto.box import BoxKeyPair, QueueBox, box_size, generate_box_keypair, queue_box
from parley.crypto.errors import (
    CryptoError,
    DecryptError,
    DuplicateMessage,
    PaddingError,
    RatchetNotReady,
    TooManySkipped,
)
from parley.crypto.padding import pad, unpad
from parley.crypto.ratchet import (
    MAX_SKIP,
    MAX_SKIPPED_KEYS,
    RatchetState,
    init_initiator,
    init_joiner,
    message_size,
)
from parley.crypto.ratchet import decrypt as ratchet_decrypt
from parley.crypto.ratchet import encrypt as ratchet_encrypt
from parley.crypto.x3dh import (
    RatchetInitParams,
    X3DHKeyPair,
    X3DHPublic,
    initiator_agree,
    joiner_agree,
)

__all__ = [
    "MAX_SKIP",
    "MAX_SKIPPED_KEYS",
    "BoxKeyPair",
    "CryptoError",
    "DecryptError",
    "DuplicateMessage",
    "PaddingError",
    "QueueBox",
    "RatchetInitParams",
    "RatchetNotReady",
    "RatchetState",
    "TooManySkipped",
    "X3DHKeyPair",
    "X3DHPublic",
    "box_size",
    "generate_box_keypair",
    "init_initiator",
    "init_joiner",
    "initiator_agree",
    "joiner_agree",
    "message_size",
    "pad",
    "queue_box",
    "ratchet_decrypt",
    "ratchet_encrypt",
    "unpad",
]
