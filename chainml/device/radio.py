"""Radio cost models: how long and how much energy it takes a device to send N bytes.

Two radios cover the fleet: Bluetooth Low Energy (short range, through a phone or gateway) and
LoRa (long range, tiny packets, duty-cycle limited). Each model turns a payload size into
packets, airtime (s) and radio energy (J); the swarm charges every node for what it uploads and
downloads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Transfer:
    """The cost of moving one payload over the air."""

    payload_bytes: int
    packets: int
    airtime_s: float
    energy_j: float


class Radio(Protocol):
    name: str

    def send(self, payload_bytes: int) -> Transfer: ...

    def receive(self, payload_bytes: int) -> Transfer: ...


@dataclass(frozen=True)
class BleRadio:
    """BLE 1M PHY with data-length extension, as on the nRF52840.

    Constants:
    - 1 Mbit/s PHY, so 8 µs per byte on air (Bluetooth Core Spec 5.3, Vol 6, Part B, §1).
    - 251-byte LL payload with data length extension; 244 bytes of ATT payload after the 4-byte
      L2CAP and 3-byte ATT headers (Core Spec 5.3, Vol 6, Part B, §2.4 and Vol 3, Part F, §3.4.7).
    - 10 bytes of LL overhead per packet (preamble 1, access address 4, header 2, CRC 3) plus the
      150 µs inter-frame space and a 80 µs empty ACK from the peer (Core Spec 5.3, Vol 6,
      Part B, §2.1 and §4.1.1).
    - TX 4.8 mA at 0 dBm and RX 4.6 mA at 1 Mbit/s, DC/DC on, 3 V (nRF52840 Product
      Specification v1.7, §6.20.15.1 "Radio current consumption (transmitter/receiver)").
    """

    name: str = "ble"
    supply_v: float = 3.0
    tx_current_a: float = 4.8e-3
    rx_current_a: float = 4.6e-3
    bytes_per_packet: int = 244
    overhead_bytes: int = 10 + 7  # LL framing + L2CAP/ATT headers
    byte_time_s: float = 8e-6
    turnaround_s: float = 150e-6 + 80e-6  # T_IFS + the peer's empty ACK

    def _transfer(self, payload_bytes: int, active_current_a: float) -> Transfer:
        packets = max(1, math.ceil(payload_bytes / self.bytes_per_packet))
        on_air = (payload_bytes + packets * self.overhead_bytes) * self.byte_time_s
        airtime = on_air + packets * self.turnaround_s
        # The radio is active while sending its own bytes and listening during the turnaround.
        energy = self.supply_v * (
            active_current_a * on_air + self.rx_current_a * packets * self.turnaround_s
        )
        return Transfer(payload_bytes, packets, airtime, energy)

    def send(self, payload_bytes: int) -> Transfer:
        return self._transfer(payload_bytes, self.tx_current_a)

    def receive(self, payload_bytes: int) -> Transfer:
        return self._transfer(payload_bytes, self.rx_current_a)


@dataclass(frozen=True)
class LoraRadio:
    """LoRa at SF7 / 125 kHz / CR 4/5, EU868, as on an SX1276 or STM32WL.

    Constants:
    - Airtime from Semtech AN1200.13 "LoRa Modem Designer's Guide", §4: symbol time 2^SF / BW,
      preamble 8 + 4.25 symbols, payload symbols
      8 + max(ceil((8PL - 4SF + 28 + 16CRC - 20IH) / (4(SF - 2DE))) (CR + 4), 0).
    - 222-byte maximum MAC payload at DR5 (SF7/125 kHz) in EU863-870 (LoRaWAN Regional
      Parameters RP002-1.0.3, §2.3.6 Table 10), minus a 13-byte LoRaWAN MAC header/MIC.
    - TX 29 mA at +13 dBm and RX 10.3 mA at 125 kHz (SX1276 datasheet rev. 7, Table 6, IDDT
      and IDDR_L), 3.3 V supply.
    - 1% duty cycle in the g1 sub-band (ETSI EN 300 220-2 V3.2.1, Table 5): a node may transmit
      at most 36 s per hour; the swarm reports the wall-clock wait this implies.
    """

    name: str = "lora"
    supply_v: float = 3.3
    tx_current_a: float = 29e-3
    rx_current_a: float = 10.3e-3
    spreading_factor: int = 7
    bandwidth_hz: float = 125e3
    coding_rate: int = 1  # 4/5
    preamble_symbols: float = 8.0
    max_payload_bytes: int = 222 - 13
    lorawan_overhead_bytes: int = 13
    duty_cycle: float = 0.01

    def packet_airtime_s(self, payload_bytes: int) -> float:
        sf = self.spreading_factor
        symbol_s = (2**sf) / self.bandwidth_hz
        low_rate_optimize = 1 if symbol_s > 16e-3 else 0
        numerator = 8 * payload_bytes - 4 * sf + 28 + 16  # CRC on, explicit header
        payload_symbols = 8 + max(
            math.ceil(numerator / (4 * (sf - 2 * low_rate_optimize))) * (self.coding_rate + 4), 0
        )
        return (self.preamble_symbols + 4.25 + payload_symbols) * symbol_s

    def _transfer(self, payload_bytes: int, current_a: float) -> Transfer:
        packets = max(1, math.ceil(payload_bytes / self.max_payload_bytes))
        full, last = divmod(payload_bytes, self.max_payload_bytes)
        sizes = [self.max_payload_bytes] * full + ([last] if last or not full else [])
        airtime = sum(self.packet_airtime_s(s + self.lorawan_overhead_bytes) for s in sizes)
        return Transfer(payload_bytes, packets, airtime, self.supply_v * current_a * airtime)

    def send(self, payload_bytes: int) -> Transfer:
        return self._transfer(payload_bytes, self.tx_current_a)

    def receive(self, payload_bytes: int) -> Transfer:
        return self._transfer(payload_bytes, self.rx_current_a)

    def duty_cycle_wait_s(self, airtime_s: float) -> float:
        """Off-air time the regulation imposes after ``airtime_s`` of transmission."""
        return airtime_s * (1.0 / self.duty_cycle - 1.0)


RADIOS: dict[str, Radio] = {"ble": BleRadio(), "lora": LoraRadio()}
