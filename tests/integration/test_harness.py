"""The harness's own promises, which every other test leans on."""
from conftest import free_port


def test_free_port_never_hands_out_a_port_twice():
    # Two ports asked for one server (listen + stats) must differ: the
    # kernel readily gives a just-closed ephemeral port again, and a CI
    # run once failed with "stats: cannot listen ... Address already in
    # use" on the port it had just given the listener.
    ports = [free_port() for _ in range(2000)]
    assert len(set(ports)) == len(ports)
