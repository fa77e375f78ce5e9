//! Exact fixed-point numbers of the data contract: amounts and weights as integer micro-units.
//!
//! The contract limits `amount` to `^[0-9]{1,15}(\.[0-9]{1,6})?$` and `Weight` to the same with an
//! optional `-`, so every value is an integer number of millionths that fits easily in 128 bits,
//! and sums of them stay exact. No binary float is ever involved.

/// Millionths in one unit.
pub const MICROS_PER_UNIT: u128 = 1_000_000;
/// Most digits before the decimal point.
pub const MAX_INTEGER_DIGITS: usize = 15;
/// Most digits after the decimal point.
pub const MAX_FRACTION_DIGITS: usize = 6;

/// Parses `^[0-9]{1,15}(\.[0-9]{1,6})?$` into micro-units; `None` when the text does not match.
pub fn parse_unsigned_micros(text: &[u8]) -> Option<u128> {
    let (int_part, frac_part) = match text.iter().position(|&b| b == b'.') {
        Some(dot) => (&text[..dot], Some(&text[dot + 1..])),
        None => (text, None),
    };
    if int_part.is_empty() || int_part.len() > MAX_INTEGER_DIGITS {
        return None;
    }
    let mut value: u128 = 0;
    for &b in int_part {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u128::from(b - b'0');
    }
    let mut micros = value * MICROS_PER_UNIT;
    if let Some(frac) = frac_part {
        if frac.is_empty() || frac.len() > MAX_FRACTION_DIGITS {
            return None;
        }
        let mut scale = MICROS_PER_UNIT;
        for &b in frac {
            if !b.is_ascii_digit() {
                return None;
            }
            scale /= 10;
            micros += u128::from(b - b'0') * scale;
        }
    }
    Some(micros)
}

/// Parses `^-?[0-9]{1,15}(\.[0-9]{1,6})?$` into signed micro-units.
pub fn parse_signed_micros(text: &[u8]) -> Option<i128> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let magnitude = i128::try_from(parse_unsigned_micros(digits)?).ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

/// Formats micro-units as a plain decimal with no trailing zeros (`12500000` is `12.5`).
pub fn format_micros(micros: i128) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let magnitude = micros.unsigned_abs();
    let int_part = magnitude / MICROS_PER_UNIT;
    let frac = magnitude % MICROS_PER_UNIT;
    if frac == 0 {
        return format!("{sign}{int_part}");
    }
    let frac_text = format!("{frac:06}");
    format!("{sign}{int_part}.{}", frac_text.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_contract_forms() {
        assert_eq!(parse_unsigned_micros(b"0"), Some(0));
        assert_eq!(parse_unsigned_micros(b"26.9"), Some(26_900_000));
        assert_eq!(parse_unsigned_micros(b"007.000001"), Some(7_000_001));
        assert_eq!(parse_unsigned_micros(b"999999999999999.999999"), Some(999_999_999_999_999_999_999));
        assert_eq!(parse_signed_micros(b"-1.5"), Some(-1_500_000));
        assert_eq!(parse_signed_micros(b"-0"), Some(0));
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            &b""[..],
            b".5",
            b"5.",
            b"1e3",
            b"+1",
            b"-1",
            b"1,000",
            b"NaN",
            b"1.1234567",
            b"1234567890123456",
            b" 1",
            b"1.2.3",
        ] {
            assert_eq!(parse_unsigned_micros(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse_signed_micros(b"--1"), None);
        assert_eq!(parse_signed_micros(b"-"), None);
    }

    #[test]
    fn formats_without_trailing_zeros() {
        assert_eq!(format_micros(12_500_000), "12.5");
        assert_eq!(format_micros(-1), "-0.000001");
        assert_eq!(format_micros(3_000_000), "3");
    }
}
