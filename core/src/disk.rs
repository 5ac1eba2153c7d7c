//! The disk preflight of the online partitioning (step 0010): how much free space the copy of
//! `crm_email_sends` needs, and the verdict, from plain numbers the SQL layer measures
//! (`pg_total_relation_size`, `statvfs` of the filesystems under the data and the WAL).

/// The margin the step wants on top of what it needs: it refuses below 1.2×.
pub const MARGIN: f64 = 1.2;

/// What the copy writes: the table, its TOAST and its indexes again (the new partitioned table),
/// and about as much WAL while it is written (WAL goes to `wal_same_fs`'s filesystem).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    /// Bytes written under the data directory (or the table's tablespace).
    pub data: u64,
    /// Bytes of WAL written meanwhile.
    pub wal: u64,
}

/// `table_bytes` is `pg_total_relation_size(crm_email_sends)`; `inflate` a factor a test sets to
/// make the need look large (1 otherwise).
pub fn need(table_bytes: u64, inflate: f64) -> Need {
    let bytes = (table_bytes as f64 * inflate.max(0.0)).min(u64::MAX as f64) as u64;
    Need { data: bytes, wal: bytes }
}

/// The verdict: `None` when there is room, otherwise the message giving both numbers. When the
/// WAL is on the data filesystem, both needs come out of the same free space.
pub fn verdict(need: Need, data_free: u64, wal_free: u64, wal_same_fs: bool) -> Option<String> {
    let with_margin = |b: u64| (b as f64 * MARGIN) as u64;
    if wal_same_fs {
        let total = need.data.saturating_add(need.wal);
        (data_free < with_margin(total)).then(|| {
            format!(
                "the copy of crm_email_sends needs {} (table and indexes {} plus as much WAL {}), {} with the 1.2× margin; {} is free on the data filesystem",
                human(total),
                human(need.data),
                human(need.wal),
                human(with_margin(total)),
                human(data_free)
            )
        })
    } else if data_free < with_margin(need.data) {
        Some(format!(
            "the copy of crm_email_sends needs {} on the data filesystem ({} with the 1.2× margin); {} is free",
            human(need.data),
            human(with_margin(need.data)),
            human(data_free)
        ))
    } else if wal_free < with_margin(need.wal) {
        Some(format!(
            "the copy of crm_email_sends writes about {} of WAL ({} with the 1.2× margin); {} is free on the WAL filesystem",
            human(need.wal),
            human(with_margin(need.wal)),
            human(wal_free)
        ))
    } else {
        None
    }
}

/// Bytes as PostgreSQL's pg_size_pretty writes them (kB, MB, GB, TB; 1024-based).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 10240.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{} {}", v.round() as u64, UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GB: u64 = 1 << 30;

    #[test]
    fn room_is_twice_the_table_with_a_margin_when_wal_shares_the_disk() {
        let n = need(10 * GB, 1.0);
        assert_eq!(verdict(n, 24 * GB, 24 * GB, true), None);
        let msg = verdict(n, 23 * GB, 23 * GB, true).unwrap();
        assert!(msg.contains("20 GB") && msg.contains("24 GB") && msg.contains("23 GB"), "{msg}");
    }

    #[test]
    fn separate_wal_disk_is_judged_on_its_own() {
        let n = need(10 * GB, 1.0);
        assert_eq!(verdict(n, 12 * GB, 12 * GB, false), None);
        assert!(verdict(n, 11 * GB, 100 * GB, false).unwrap().contains("data filesystem"));
        assert!(verdict(n, 100 * GB, 11 * GB, false).unwrap().contains("WAL filesystem"));
    }

    #[test]
    fn the_test_setting_inflates_the_need() {
        assert!(verdict(need(1 << 20, 1e9), 1 << 40, 1 << 40, true).is_some());
        assert!(verdict(need(1 << 20, 1.0), 1 << 40, 1 << 40, true).is_none());
        assert_eq!(need(100, 0.0), Need { data: 0, wal: 0 });
    }

    #[test]
    fn sizes_read_like_pg_size_pretty() {
        assert_eq!(human(500), "500 bytes");
        assert_eq!(human(20 * 1024), "20 kB");
        assert_eq!(human(20 * GB), "20 GB");
    }
}
