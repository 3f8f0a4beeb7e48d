//! INS matricule (NIR or NIA, SPEC §3): 13 characters and a two-digit key,
//! key = 97 − (N mod 97), with `2A→19` and `2B→18` substituted for a Corsican birthplace.
//! Only checks the shape and key; the value is health-identifying data and is never logged.

/// True when `value` (spaces allowed) is a 15-character matricule with a correct key.
pub fn is_valid(value: &str) -> bool {
    let s: String = value
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_uppercase)
        .collect();
    if s.len() != 15 || !s.is_ascii() {
        return false;
    }
    let (body, key) = s.split_at(13);
    let Ok(key) = key.parse::<u64>() else {
        return false;
    };
    // Département of birth sits at characters 6–7.
    let body = match &body[5..7] {
        "2A" => format!("{}19{}", &body[..5], &body[7..]),
        "2B" => format!("{}18{}", &body[..5], &body[7..]),
        _ => body.to_string(),
    };
    let Ok(n) = body.parse::<u64>() else {
        return false;
    };
    97 - n % 97 == key
}

#[cfg(test)]
mod tests {
    use super::is_valid;

    #[test]
    fn spec_example() {
        assert!(is_valid("295109912611193"));
        assert!(is_valid("2 95 10 99 126 111 93"));
        assert!(!is_valid("295109912611194"));
        assert!(!is_valid("29510991261119"));
    }

    #[test]
    fn corsican_birthplace() {
        // 1 85 05 2A 004 017 + key computed with 2A→19.
        let n: u64 = 1_850_519_004_017;
        let key = 97 - n % 97;
        assert!(is_valid(&format!("185052A004017{key:02}")));
        assert!(!is_valid(&format!("185052B004017{key:02}")));
    }
}
