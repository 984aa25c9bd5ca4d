"""Small prepared FHiCL file sets (as fhiclize.prepare_run gives them) for the artdaqDB tests."""

from __future__ import annotations

from pathlib import Path

SCHEMA = (Path(__file__).resolve().parents[2] / "archiver_resources" / "fhiclize" / "schema.fcl")


def schema_text() -> str:
    if SCHEMA.exists():
        return SCHEMA.read_text(encoding="utf-8")
    return ('run_history: [ { collection: RunHistory pattern: \'(.*/)(.*)(\\.fcl$)\' } ]\n'
            'system_layout: [ { collection: SystemLayout pattern: \'(.*/)(schema)(\\.fcl$)\' } ]\n')


def insert_files(run: int, config: str = "standard", n_processes: int = 3) -> dict[str, str]:
    """Relative path → FHiCL text: schema.fcl, RunHistory.fcl, metadata, boot and process files."""
    files = {
        "schema.fcl": schema_text(),
        "RunHistory.fcl": f'run_number: {run}\n\nconfig_name: "{config}"\n\n'
                          f'components: ["tpc01", "tpc02"]\n\n',
        "metadata.fcl": f'config_name: "{config}"\ncomponents: ["tpc01", "tpc02"]\n'
                        f'DAQInterface_directory: "evb01:/home/daq/DAQInterface"\n',
        "boot.fcl": 'DAQ_setup_script: "/home/daq/setup.sh"\nartdaq_process_settings: [\n'
                    '  {name: "EventBuilder" label: "EventBuilder1" host: "localhost" port: 5235}\n]\n',
    }
    for i in range(n_processes):
        files[f"{run}/component{i:02d}.fcl"] = (
            f"# boardreader {i}\ndaq: {{\n  fragment_receiver: {{\n"
            f"    generator: ToySimulator  # toy\n    fragment_id: {i}\n    board_id: {i}\n"
            f"    max_fragment_size_bytes: 0x100000\n  }}\n}}\n"
            f"physics: {{ analyzers: {{}} }}\nprocess_name: DAQ{i}\n")
    return files


def update_files(stop_time: str = "Tue Oct 15 16:02:48 UTC 2024") -> dict[str, str]:
    return {
        "RunHistory2.fcl": 'DAQInterface_start_time: "Tue Oct 15 14:02:11 UTC 2024"\n'
                           f'DAQInterface_stop_time: "{stop_time}"',
        "schema.fcl": schema_text(),
    }
