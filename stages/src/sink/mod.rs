//! Where audio goes: files (WAV or FLAC, written whole or not at all), or nowhere.

pub mod file;
pub mod flac;
pub mod null;

pub use file::{AudioFileSink, OutputError, SampleFormat, TimelineWriter};
pub use null::NullSink;

/// Write `bytes` to `path` whole or not at all: a unique hidden temporary file beside it
/// (`.NAME.*.tmp`), synced, made readable (0644 on Unix, like any finished output), renamed
/// into place, and the folder synced so the rename itself survives a power loss.
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let mut temp = tempfile::Builder::new().prefix(&format!(".{name}.")).suffix(".tmp").tempfile_in(dir)?;
    temp.write_all(bytes)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        temp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    if let Ok(d) = std::fs::File::open(dir) {
        // Not every platform can sync a folder.
        let _ = d.sync_all();
    }
    Ok(())
}
