from temporal_siem.cli import entry

entry()
