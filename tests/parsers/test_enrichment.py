"""user_agent.* from user_agent.original, and source.geo / source.as from MaxMind-format databases the test writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mmdb_writer import MMDBWriter
from netaddr import IPSet
from pydantic import ValidationError

from temporal_siem.kernel.config import GeoIPConfig, ParsingConfig
from temporal_siem.kernel.records import Origin, RawRecord
from temporal_siem.parsers.enrichment import Enricher, GeoIP, user_agent_fields
from temporal_siem.parsers.router import ParserRouter

FIREFOX_WIN7 = "Mozilla/5.0 (Windows NT 6.1; WOW64; rv:24.0) Gecko/20100101 Firefox/24.0"
AWS_CLI = "aws-cli/1.16.248 Python/3.4.7 Linux/4.9.184-0.1.ac.235.83.329.metal1.x86_64 botocore/1.12.239"
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.4 Mobile/15E148 Safari/604.1")


def test_browser_agent_gets_elastic_shaped_fields():
    fields = dict(user_agent_fields(FIREFOX_WIN7))
    assert fields == {
        "user_agent.name": "Firefox", "user_agent.version": "24.0", "user_agent.os.name": "Windows",
        "user_agent.os.version": "7", "user_agent.os.full": "Windows 7", "user_agent.device.name": "Other",
    }


def test_cli_and_mobile_agents():
    cli = dict(user_agent_fields(AWS_CLI))
    assert cli["user_agent.name"] == "aws-cli" and cli["user_agent.version"] == "1.16.248"
    assert cli["user_agent.os.name"] == "Linux" and cli["user_agent.os.version"] == "4.9.184"
    assert cli["user_agent.device.name"] == "Spider"  # uap-core's name for non-browser clients, as Elastic writes it
    phone = dict(user_agent_fields(IPHONE))
    assert phone["user_agent.name"] == "Mobile Safari" and phone["user_agent.os.name"] == "iOS"
    assert phone["user_agent.os.version"] == "17.4" and phone["user_agent.device.name"] == "iPhone"


def test_unknown_agent_is_other_and_huge_agent_is_not_parsed():
    assert dict(user_agent_fields("totally-unknown-thing"))["user_agent.name"] == "Other"
    assert user_agent_fields("A" * 5000) == ()


def test_repeated_agents_hit_the_cache():
    text = FIREFOX_WIN7 + " cache-probe"
    user_agent_fields(text)
    hits = user_agent_fields.cache_info().hits
    for _ in range(5):
        user_agent_fields(text)
    assert user_agent_fields.cache_info().hits == hits + 5


def test_fields_a_parser_set_are_kept():
    event = {"user_agent.original": FIREFOX_WIN7, "user_agent.os.name": "Windows (from the vendor)"}
    Enricher().enrich(event)
    assert event["user_agent.os.name"] == "Windows (from the vendor)" and event["user_agent.name"] == "Firefox"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_agent_text_gives_a_name_or_nothing(text):
    fields = dict(user_agent_fields(text))
    assert not fields or isinstance(fields["user_agent.name"], str)
    assert all(isinstance(key, str) and key.startswith("user_agent.") for key in fields)


def write_databases(folder: Path) -> tuple[Path, Path]:
    """A City and an ASN database covering 203.0.113.0/24 and 2001:db8:1::/48 (documentation ranges)."""
    city = MMDBWriter(ip_version=6, database_type="GeoLite2-City", languages=["en"], description={"en": "test city"},
                      ipv4_compatible=True)
    city.insert_network(IPSet(["203.0.113.0/24", "2001:db8:1::/48"]), {
        "continent": {"code": "EU", "names": {"en": "Europe"}},
        "country": {"iso_code": "PT", "names": {"en": "Portugal"}},
        "subdivisions": [{"iso_code": "11", "names": {"en": "Lisbon"}}],
        "city": {"names": {"en": "Lisbon"}},
        "location": {"latitude": 38.72, "longitude": -9.14},
    })
    city_path = folder / "city.mmdb"
    city.to_db_file(str(city_path))
    asn = MMDBWriter(ip_version=6, database_type="GeoLite2-ASN", languages=["en"], description={"en": "test asn"},
                     ipv4_compatible=True)
    asn.insert_network(IPSet(["203.0.113.0/24"]), {"autonomous_system_number": 64496, "autonomous_system_organization": "Example Net"})
    asn_path = folder / "asn.mmdb"
    asn.to_db_file(str(asn_path))
    return city_path, asn_path


VAULT_LINE = {"time": "2025-08-12T09:00:00.000Z", "type": "response", "auth": {"display_name": "token"},
              "request": {"id": "r-1", "operation": "read", "path": "secret/data/x", "remote_address": "203.0.113.9"},
              "response": {}}


def parse_with(config: GeoIPConfig | None, record: dict) -> dict:
    router = ParserRouter(geoip=config)
    result = router.parse(RawRecord(orjson.dumps(record), Origin("test")))
    assert not result.dead and len(result.events) == 1
    return result.events[0]


def test_geo_and_as_from_the_configured_databases(tmp_path):
    city, asn = write_databases(tmp_path)
    event = parse_with(GeoIPConfig(city_database=city, asn_database=asn), VAULT_LINE)
    assert event["source.geo.city_name"] == "Lisbon"
    assert event["source.geo.country_iso_code"] == "PT" and event["source.geo.country_name"] == "Portugal"
    assert event["source.geo.region_iso_code"] == "PT-11" and event["source.geo.region_name"] == "Lisbon"
    assert event["source.geo.continent_name"] == "Europe"
    assert event["source.geo.location"] == {"lat": 38.72, "lon": -9.14}
    assert event["source.as.number"] == 64496 and event["source.as.organization.name"] == "Example Net"


def test_ipv6_and_unknown_addresses(tmp_path):
    city, asn = write_databases(tmp_path)
    geo = GeoIP(city, asn)
    assert dict(geo.lookup("2001:db8:1::7"))["source.geo.country_iso_code"] == "PT"
    assert geo.lookup("198.51.100.1") == ()  # not in the database: nothing, not an error


def test_no_database_means_no_geo_fields_and_no_error(tmp_path):
    missing = GeoIPConfig(city_database=tmp_path / "absent.mmdb", asn_database=tmp_path / "absent-asn.mmdb")
    not_mmdb = tmp_path / "garbage.mmdb"
    not_mmdb.write_bytes(b"not a maxmind database")
    for config in (None, GeoIPConfig(), missing, GeoIPConfig(city_database=not_mmdb)):
        event = parse_with(config, VAULT_LINE)
        assert event["source.ip"] == "203.0.113.9"
        assert not [key for key in event if key.startswith(("source.geo.", "source.as."))]


def test_vendor_geo_is_kept(tmp_path):
    city, asn = write_databases(tmp_path)
    event = {"source.ip": "203.0.113.9", "source.geo.city_name": "Porto", "source.geo.country_name": "Portugal"}
    Enricher(GeoIPConfig(city_database=city, asn_database=asn)).enrich(event)
    assert event["source.geo.city_name"] == "Porto" and "source.geo.location" not in event


def test_geoip_config_is_typed_and_closed(tmp_path):
    assert ParsingConfig().geoip == GeoIPConfig()
    assert ParsingConfig.model_validate({"geoip": {"city_database": str(tmp_path)}}).geoip.city_database == tmp_path
    with pytest.raises(ValidationError):
        GeoIPConfig.model_validate({"city_db": "x.mmdb"})


def test_cli_parse_with_geoip_config(tmp_path):
    """The user's path: a config naming the databases, `temporal-siem parse` over a shipped sample."""
    city, asn = write_databases(tmp_path)
    config = tmp_path / "config.yml"
    config.write_text(f"parsing:\n  geoip:\n    city_database: {city}\n    asn_database: {asn}\n", encoding="utf-8")
    out = tmp_path / "events.jsonl"
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "temporal_siem", "parse", str(root / "samples" / "vault_audit"),
                           "--config", str(config), "--out", str(out)], cwd=root, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    events = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    located = [e for e in events if e.get("source", {}).get("ip", "").startswith("203.0.113.")]
    assert located and all(e["source"]["geo"]["country_iso_code"] == "PT" and e["source"]["as"]["number"] == 64496 for e in located)
    elsewhere = [e for e in events if not e.get("source", {}).get("ip", "").startswith("203.0.113.")]
    assert elsewhere and not any("geo" in e.get("source", {}) for e in elsewhere)


@pytest.fixture(scope="module")
def geoip(tmp_path_factory) -> GeoIP:
    city, asn = write_databases(tmp_path_factory.mktemp("mmdb"))
    return GeoIP(city, asn)


@settings(max_examples=300, deadline=None)
@given(st.ip_addresses().filter(lambda a: a.version == 4 or int(a) >= 2**48))  # not the IPv4-in-IPv6 forms
def test_any_address_is_located_only_inside_the_database(geoip, address):
    import ipaddress

    fields = dict(geoip.lookup(str(address)))
    inside = any(address in ipaddress.ip_network(net) for net in ("203.0.113.0/24", "2001:db8:1::/48")
                 if address.version == ipaddress.ip_network(net).version)
    assert bool(fields) == inside
    if inside:
        assert fields["source.geo.country_iso_code"] == "PT"
