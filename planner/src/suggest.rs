//! "Did you mean" suggestions.

/// Edit distance where an adjacent transposition counts as one edit (optimal string
/// alignment), so `imgae` is one edit from `image`.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The closest candidate, if it is close enough to be what the user meant.
pub fn did_you_mean<'a, I>(input: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let normalized = input.to_lowercase().replace('_', "-");
    let mut best: Option<(usize, &'a str)> = None;
    for c in candidates {
        let d = if c == normalized {
            0
        } else {
            edit_distance(&normalized, c).max(1)
        };
        let threshold = (c.chars().count().max(input.chars().count()) / 3).max(1);
        // A prefix match ("replica" for "replicas") counts as close whatever the length.
        let close = d <= threshold || (normalized.len() >= 3 && c.starts_with(&normalized));
        if close && best.is_none_or(|(bd, bc)| d < bd || (d == bd && c < bc)) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// `did you mean `x`?` or a list of what is valid, for a help line.
pub fn help_for(input: &str, candidates: &[&str], what: &str) -> String {
    match did_you_mean(input, candidates.iter().copied()) {
        Some(s) => format!("did you mean `{s}`?"),
        None if candidates.len() <= 12 => {
            let list: Vec<String> = candidates.iter().map(|c| format!("`{c}`")).collect();
            format!("{what} are: {}", list.join(", "))
        }
        None => format!("see docs/LANGUAGE.md for the {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("replica", ["replicas", "port"]),
            Some("replicas")
        );
        assert_eq!(did_you_mean("imgae", ["image", "env"]), Some("image"));
        assert_eq!(did_you_mean("ENV", ["image", "env"]), Some("env"));
        assert_eq!(
            did_you_mean("storage_gb", ["storage-gb", "size"]),
            Some("storage-gb")
        );
        assert_eq!(did_you_mean("zzz", ["image", "env"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
