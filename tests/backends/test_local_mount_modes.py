"""An isolated local job (Train running as root) gets its `ro` mounts read-only: it cannot create,
change or delete anything in them, even where the files' permissions would let its user, while its
`rw` mounts (also one inside an `ro` mount) stay writable. The host's mount table is untouched. A
mount that vanished between validation and the start fails the job, naming the mount."""

import uuid
from pathlib import Path

from backends.base import Mount
from tests.backends.test_local_isolation import final, name, spec

# One line per try, with the shell's own error: "Read-only file system" is the mount's refusal.
WRITER = r"""
for target in "$STORAGE_MOUNT_0_PATH/new.txt" "$STORAGE_MOUNT_0_PATH/data.txt" \
              "$STORAGE_MOUNT_1_PATH/out.txt" "$STORAGE_MOUNT_2_PATH/nested.txt"; do
  if (echo written >> "$target") 2>err; then echo "WROTE $target"; else echo "REFUSED $target: $(cat err)"; fi
done
if rm "$STORAGE_MOUNT_0_PATH/data.txt" 2>err; then echo "DELETED data.txt"; else echo "KEPT data.txt: $(cat err)"; fi
"""


def open_dir(path: Path) -> Path:
    """A directory any user may write: only the mount can stop the job."""
    path.mkdir(parents=True)
    path.chmod(0o777)
    return path


def mount_table() -> list[str]:
    return Path("/proc/self/mountinfo").read_text().splitlines()


def test_ro_mounts_are_read_only_to_the_job_and_rw_mounts_stay_writable(isolating_local_backend, storage_dir):
    backend = isolating_local_backend
    read_only = open_dir(storage_dir / f"ro-{uuid.uuid4().hex[:8]}")
    (read_only / "data.txt").write_text("training data\n")
    (read_only / "data.txt").chmod(0o666)
    writable = open_dir(storage_dir / f"rw-{uuid.uuid4().hex[:8]}")
    nested = open_dir(read_only / "outputs")
    mounts = (Mount(f"file://{read_only}", "ro"), Mount(f"file://{writable}", "rw"), Mount(f"file://{nested}", "rw"))

    ref = backend.submit(spec("sh", "-c", WRITER, storage_mounts=mounts), name())
    assert final(backend, ref).status == "COMPLETED"
    lines = backend.logs(ref, tail=20)
    print("\n".join(lines))  # shown when the test fails

    assert [line.split(":")[0] for line in lines] == [
        f"REFUSED {read_only}/new.txt", f"REFUSED {read_only}/data.txt", f"WROTE {writable}/out.txt",
        f"WROTE {nested}/nested.txt", "KEPT data.txt"]
    assert all("Read-only file system" in line for line in lines if line.startswith(("REFUSED", "KEPT")))
    assert (read_only / "data.txt").read_text() == "training data\n" and not (read_only / "new.txt").exists()
    assert (writable / "out.txt").read_text() == "written\n" and (nested / "nested.txt").read_text() == "written\n"
    # Other tests' containers mount and unmount meanwhile: look only for the job's paths.
    assert [line for line in mount_table() if str(storage_dir) in line] == [], "the binds stay in the job's namespace"


def test_a_mount_that_vanished_before_the_start_fails_the_job_naming_it(isolating_local_backend, storage_dir):
    backend = isolating_local_backend
    gone = storage_dir / f"gone-{uuid.uuid4().hex[:8]}"  # validated when it existed, removed since
    ref = backend.submit(spec("true", storage_mounts=(Mount(f"file://{gone}", "ro"),)), name())
    seen = final(backend, ref)
    assert seen.status == "FAILED" and seen.remote_status.startswith("failed_to_start")
    assert seen.message == f"Storage mount 0 ({gone}) no longer exists on the Train host."
