//! Byte sizes as people write them ("6GiB", "512MiB", "6G") and as reports print them.

use super::ArbiterError;

const KIB: u64 = 1024;
const MIB: u64 = KIB * 1024;
const GIB: u64 = MIB * 1024;
const TIB: u64 = GIB * 1024;

/// Parses a memory size: a number (decimals allowed) and an optional unit.
///
/// `KiB MiB GiB TiB` and the one-letter forms `K M G T` are powers of 1024 (as GPU tools
/// print memory); `KB MB GB TB` are powers of 1000; `B` or no unit means bytes. Case and a
/// space before the unit do not matter: "6GiB", "6 gib", "6G", "512MiB", "1.5GiB",
/// "6000000000".
pub fn parse_bytes(text: &str) -> Result<u64, ArbiterError> {
    let bad = |why: &str| ArbiterError::BadSize { text: text.to_string(), why: why.to_string() };
    let trimmed = text.trim();
    let split = trimmed.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    if number.is_empty() {
        return Err(bad("it does not start with a number"));
    }
    let value: f64 = number.parse().map_err(|_| bad("the number is malformed"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => KIB,
        "m" | "mib" => MIB,
        "g" | "gib" => GIB,
        "t" | "tib" => TIB,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(bad("unknown unit (use B, KiB, MiB, GiB, TiB, K, M, G, T, KB, MB, GB or TB)")),
    };
    let bytes = value * scale as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(bad("the size is too large"));
    }
    Ok(bytes.round() as u64)
}

/// Prints a size the way the arbiter's messages and reports do: "5.50 GiB", "512.0 MiB",
/// "900 B".
pub fn fmt_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    if bytes >= GIB {
        format!("{:.2} GiB", b / GIB as f64)
    } else if bytes >= MIB {
        format!("{:.1} MiB", b / MIB as f64)
    } else if bytes >= KIB {
        format!("{:.1} KiB", b / KIB as f64)
    } else {
        format!("{bytes} B")
    }
}

/// The budget to use when the user gives none: the device's free memory less a margin for
/// the CUDA context, allocator slack and other programs (a tenth of it, at least 256 MiB).
pub fn default_budget(free_bytes: u64) -> u64 {
    let margin = (free_bytes / 10).max(256 * MIB);
    free_bytes.saturating_sub(margin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binary_and_decimal_units() {
        assert_eq!(parse_bytes("6GiB").unwrap(), 6 * GIB);
        assert_eq!(parse_bytes("6G").unwrap(), 6 * GIB);
        assert_eq!(parse_bytes(" 6 gib ").unwrap(), 6 * GIB);
        assert_eq!(parse_bytes("512MiB").unwrap(), 512 * MIB);
        assert_eq!(parse_bytes("1.5GiB").unwrap(), 3 * GIB / 2);
        assert_eq!(parse_bytes("6GB").unwrap(), 6_000_000_000);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert_eq!(parse_bytes("10k").unwrap(), 10 * KIB);
    }

    #[test]
    fn refuses_malformed_sizes_with_the_text() {
        for text in ["", "GiB", "6 apples", "1.2.3G", "-5G"] {
            let err = parse_bytes(text).unwrap_err();
            assert!(matches!(err, ArbiterError::BadSize { .. }), "{text}: {err}");
            assert!(err.to_string().contains(text.trim()), "{err}");
        }
    }

    #[test]
    fn formats_and_defaults() {
        assert_eq!(fmt_bytes(6 * GIB), "6.00 GiB");
        assert_eq!(fmt_bytes(512 * MIB), "512.0 MiB");
        assert_eq!(fmt_bytes(900), "900 B");
        assert_eq!(default_budget(8 * GIB), 8 * GIB - 8 * GIB / 10);
        assert_eq!(default_budget(GIB), 768 * MIB);
        assert_eq!(default_budget(100 * MIB), 0);
    }
}
