//! Choosing the WAL span of the next upload.
//!
//! An upload takes every durable batch from the checkpoint on, in WAL order,
//! up to a size cap. The cut always falls between batches, so the new
//! checkpoint is the position of the first batch left out (or the durable
//! end when everything fits).

/// A durable batch waiting for upload: where it is and how big.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub lsn: u64,
    pub bytes: u64,
}

/// How many of `pending` (sorted by LSN) the next object takes, and the new
/// checkpoint. At least one batch is taken, however large, so progress is
/// always possible.
pub fn plan(pending: &[Pending], durable_lsn: u64, max_object_bytes: u64) -> (usize, u64) {
    let mut total = 0u64;
    for (i, p) in pending.iter().enumerate() {
        if i > 0 && total + p.bytes > max_object_bytes {
            return (i, p.lsn);
        }
        total += p.bytes;
    }
    (pending.len(), durable_lsn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(lsn: u64, bytes: u64) -> Pending {
        Pending { lsn, bytes }
    }

    #[test]
    fn everything_fits() {
        assert_eq!(plan(&[p(0, 10), p(10, 10)], 20, 100), (2, 20));
        assert_eq!(plan(&[], 50, 100), (0, 50));
    }

    #[test]
    fn cut_between_batches_and_one_always_goes() {
        assert_eq!(plan(&[p(0, 60), p(60, 60), p(120, 1)], 121, 100), (1, 60));
        assert_eq!(plan(&[p(0, 500)], 500, 100), (1, 500));
    }

    proptest! {
        #[test]
        fn cap_respected_and_checkpoint_is_next_batch(
            sizes in proptest::collection::vec(1u64..100, 0..50), cap in 1u64..500,
        ) {
            let mut lsn = 0;
            let pending: Vec<Pending> = sizes.iter().map(|b| { let x = p(lsn, *b); lsn += b; x }).collect();
            let (n, checkpoint) = plan(&pending, lsn, cap);
            let taken: u64 = pending[..n].iter().map(|x| x.bytes).sum();
            prop_assert!(n >= 1 || pending.is_empty());
            prop_assert!(n <= 1 || taken <= cap);
            if n < pending.len() {
                prop_assert_eq!(checkpoint, pending[n].lsn);
            } else {
                prop_assert_eq!(checkpoint, lsn);
            }
        }
    }
}
