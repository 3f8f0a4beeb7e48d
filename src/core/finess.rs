//! FINESS numbers (SPEC §3): nine characters, a département prefix and a Luhn key computed
//! with the Corsican letters mapped `A→1`, `B→2`. Owns parsing and normalisation only.

use std::fmt;

/// A checked, normalised FINESS number (nine upper-case characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Finess(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FinessError {
    #[error("a FINESS number has 9 characters, this one has {0}")]
    Length(usize),
    #[error("a FINESS number holds digits, and A or B only in second place (Corsica)")]
    Characters,
    #[error("{0:?} is not a département prefix")]
    Departement(String),
    #[error("the check key (last character) is wrong")]
    Key,
}

impl Finess {
    /// Accepts spaces and dots as separators (`69 000 088 0`, `69.000.088.0`) and lower case.
    pub fn parse(input: &str) -> Result<Finess, FinessError> {
        let norm: String = input
            .chars()
            .filter(|c| !(c.is_whitespace() || *c == '.'))
            .flat_map(char::to_uppercase)
            .collect();
        let count = norm.chars().count();
        if count != 9 {
            return Err(FinessError::Length(count));
        }
        let bytes = norm.as_bytes();
        let corsican = bytes[0] == b'2' && matches!(bytes[1], b'A' | b'B');
        let shape_ok = bytes
            .iter()
            .enumerate()
            .all(|(i, b)| b.is_ascii_digit() || (i == 1 && corsican && matches!(b, b'A' | b'B')));
        if !shape_ok {
            return Err(FinessError::Characters);
        }
        let prefix = &norm[..2];
        if !corsican {
            // 01–95 (20 ceased to exist in 1976: Corsica is 2A/2B), 97x/98x overseas.
            let n: u32 = prefix.parse().map_err(|_| FinessError::Characters)?;
            if n == 0 || n == 20 || n == 96 || n == 99 {
                return Err(FinessError::Departement(prefix.to_string()));
            }
        }
        if !luhn_ok(bytes) {
            return Err(FinessError::Key);
        }
        Ok(Finess(norm))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn luhn_ok(bytes: &[u8]) -> bool {
    let sum: u32 = bytes
        .iter()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = match b {
                b'A' => 1,
                b'B' => 2,
                _ => u32::from(b - b'0'),
            };
            if i % 2 == 1 {
                let d2 = d * 2;
                if d2 > 9 { d2 - 9 } else { d2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

impl fmt::Display for Finess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &[&str] = &[
        "2A0000154",
        "2B0000038",
        "2B0004246",
        "2B0005342",
        "2B0005359",
        "2B0000020",
        "010780054",
        "750712184",
        "970100186",
        "980600027",
        "300017985",
        "690000880",
    ];

    #[test]
    fn spec_valid_vectors() {
        for v in VALID {
            assert_eq!(Finess::parse(v).map(|f| f.0), Ok(v.to_string()), "{v}");
        }
    }

    #[test]
    fn spec_invalid_vectors() {
        for v in ["2B0000039", "2A0000155", "010780055", "690000881"] {
            assert_eq!(Finess::parse(v), Err(FinessError::Key), "{v}");
        }
    }

    #[test]
    fn separators_and_case_are_normalised() {
        assert_eq!(Finess::parse("69 000 088 0").unwrap().as_str(), "690000880");
        assert_eq!(Finess::parse("69.000.088.0").unwrap().as_str(), "690000880");
        assert_eq!(Finess::parse("2a0000154").unwrap().as_str(), "2A0000154");
    }

    #[test]
    fn shape_errors() {
        assert_eq!(Finess::parse("69000088"), Err(FinessError::Length(8)));
        assert_eq!(Finess::parse("6900008800"), Err(FinessError::Length(10)));
        assert_eq!(Finess::parse("69000X880"), Err(FinessError::Characters));
        assert_eq!(Finess::parse("3A0000154"), Err(FinessError::Characters));
        assert_eq!(Finess::parse("2C0000154"), Err(FinessError::Characters));
        // 000000000 passes Luhn but has no département.
        assert_eq!(
            Finess::parse("000000000"),
            Err(FinessError::Departement("00".into()))
        );
        assert_eq!(Finess::parse(""), Err(FinessError::Length(0)));
        assert_eq!(
            Finess::parse("６９００００８８０"),
            Err(FinessError::Characters)
        );
    }
}
