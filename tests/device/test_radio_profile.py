"""Radio and hardware cost models: monotone, consistent with their datasheet formulas."""

from __future__ import annotations

import itertools

import pytest

from chainml.device.profile import PROFILES, get_profile
from chainml.device.radio import BleRadio, LoraRadio
from chainml.errors import ConfigError


@pytest.mark.parametrize("radio", [BleRadio(), LoraRadio()])
def test_costs_grow_with_payload(radio: BleRadio | LoraRadio) -> None:
    sizes = [1, 100, 1_000, 10_000, 100_000]
    sends = [radio.send(n) for n in sizes]
    for small, large in itertools.pairwise(sends):
        assert large.airtime_s > small.airtime_s
        assert large.energy_j > small.energy_j
        assert large.packets >= small.packets


def test_ble_airtime_is_at_least_the_raw_bit_time() -> None:
    transfer = BleRadio().send(10_000)
    assert transfer.airtime_s >= 10_000 * 8 / 1e6
    assert transfer.packets == 41


def test_lora_packet_airtime_matches_semtech_formula() -> None:
    # SF7/125 kHz, CR 4/5, CRC on, explicit header: a 51-byte packet is 102.7 ms and a 13-byte
    # one is 46.3 ms (values from the AN1200.13 formula, as the Semtech calculator gives them).
    lora = LoraRadio()
    assert lora.packet_airtime_s(51) == pytest.approx(0.10266, abs=1e-4)
    assert lora.packet_airtime_s(13) == pytest.approx(0.04634, abs=1e-4)
    assert lora.duty_cycle_wait_s(1.0) == pytest.approx(99.0)


def test_lora_costs_far_more_per_byte_than_ble() -> None:
    assert LoraRadio().send(5_000).energy_j > 50 * BleRadio().send(5_000).energy_j


def test_profiles() -> None:
    nrf = get_profile("nrf52840-ble")
    assert nrf.ram_bytes == 256 * 1024 and nrf.flash_bytes == 1024 * 1024
    assert 1e-11 < nrf.energy_per_mac_j < 1e-8
    assert nrf.compute_time_s(32_000_000) == pytest.approx(1.0)
    for profile in PROFILES.values():
        assert profile.radio.name == profile.radio_name
    with pytest.raises(ConfigError, match="unknown hardware profile"):
        get_profile("esp32")
