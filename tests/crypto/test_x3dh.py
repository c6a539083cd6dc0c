import pytest

from parley.crypto import CryptoError, X3DHKeyPair, X3DHPublic, initiator_agree, joiner_agree


def test_both_sides_derive_identical_params() -> None:
    initiator, joiner = X3DHKeyPair.generate(), X3DHKeyPair.generate()
    a = initiator_agree(initiator, joiner.public())
    b = joiner_agree(joiner, initiator.public())
    assert a == b
    assert len(a.root_key) == len(a.joiner_header_key) == len(a.initiator_next_header_key) == 32
    assert len({a.root_key, a.joiner_header_key, a.initiator_next_header_key}) == 3
    assert a.associated_data == initiator.public().to_bytes() + joiner.public().to_bytes()


def test_roles_matter() -> None:
    initiator, joiner = X3DHKeyPair.generate(), X3DHKeyPair.generate()
    a = initiator_agree(initiator, joiner.public())
    swapped = initiator_agree(joiner, initiator.public())
    assert a.root_key != swapped.root_key


def test_different_peers_different_params() -> None:
    initiator = X3DHKeyPair.generate()
    one = initiator_agree(initiator, X3DHKeyPair.generate().public())
    two = initiator_agree(initiator, X3DHKeyPair.generate().public())
    assert one.root_key != two.root_key


def test_public_bytes_round_trip() -> None:
    public = X3DHKeyPair.generate().public()
    data = public.to_bytes()
    assert len(data) == 64
    assert X3DHPublic.from_bytes(data) == public
    with pytest.raises(CryptoError):
        X3DHPublic.from_bytes(data[:-1])
    with pytest.raises(CryptoError):
        X3DHPublic(b"short", public.key2)


def test_key_pair_bytes_round_trip_and_secret_repr() -> None:
    pair = X3DHKeyPair.generate()
    assert X3DHKeyPair.from_bytes(pair.to_bytes()) == pair
    assert X3DHKeyPair.from_bytes(pair.to_bytes()).public() == pair.public()
    assert pair.key1.hex() not in repr(pair)
    with pytest.raises(CryptoError):
        X3DHKeyPair.from_bytes(b"x" * 63)


def test_low_order_peer_key_rejected() -> None:
    with pytest.raises(CryptoError):
        initiator_agree(X3DHKeyPair.generate(), X3DHPublic(bytes(32), bytes(32)))
