//! `revoice devices`: the audio devices cpal sees, with the index and name `revoice live
//! --input/--output` accept.

use revoice_stages::live::device;

use super::Global;

pub fn run(global: &Global) -> anyhow::Result<()> {
    let (host, devices) = device::list();
    let usable = devices.iter().filter(|d| !d.config.starts_with("unusable")).count();
    if global.json {
        println!("{}", serde_json::json!({ "host": host, "devices": devices, "usable": usable }));
        return Ok(());
    }
    if devices.is_empty() {
        println!("No audio devices found (host {host}). `revoice live --input-file F --output-file F` and `revoice file` work without them.");
        return Ok(());
    }
    println!("host: {host}");
    for d in &devices {
        println!("{:>6} {:>2}  {}{}  [{}]", d.direction, d.index, d.name, if d.default { " (default)" } else { "" }, d.config);
    }
    println!("Choose with `revoice live --input INDEX|NAME --output INDEX|NAME` (part of a name is enough).");
    if usable == 0 {
        println!("None of these devices can be opened (no sound card?). `revoice live --input-file F --output-file F` works without them.");
    }
    Ok(())
}
