//! OpenMessaging Benchmark (OMB) workload files for `compare --workload`.
//!
//! The file is OMB's workload YAML, so the same file can be run by OMB
//! against Kafka or RocketMQ elsewhere and the numbers put side by side.
//! How its keys map onto a comparison:
//!
//! | OMB key                                        | here                                    |
//! |------------------------------------------------|-----------------------------------------|
//! | `name`                                         | named in the report                     |
//! | `topics`                                       | `--topics`                              |
//! | `partitionsPerTopic`                           | `--queues` (per topic)                  |
//! | `messageSize`                                  | `--message-size`                        |
//! | `producersPerTopic` × `topics`                 | `--producers`                           |
//! | `producerRate` (total msgs/s)                  | `--rate`                                |
//! | `subscriptionsPerTopic` × `consumerPerSubscription` > 0 | readers: one per queue (tail)  |
//! | `consumerBacklogSizeGB` > 0                    | the catch-up scenario, that backlog     |
//! | `testDurationMinutes`, `warmupDurationMinutes` | `--duration`, `--warmup`                |
//!
//! The scenario follows from the shape: a backlog → `catchup`; consumers →
//! `tail`; otherwise `max-rate` at rate 0 and `fixed-rate` at a rate.
//! Durations may be fractions of a minute (OMB itself reads whole minutes).
//! `producerRate: 0` differs: OMB searches for the highest rate its
//! consumers keep up with; here producers publish as fast as the system
//! acknowledges, so the two numbers are not the same measurement.
//! `keyDistributor`, `payloadFile`, `useRandomizedPayloads`,
//! `randomBytesRatio`, `randomizedPayloadPoolSize` and `backlogDrainRatio`
//! are accepted and not used: bodies are always random, each stamped with
//! its send time. Any other key is an error.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::args::{CompareArgs, ScenarioKind};

/// One OMB workload file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Workload {
    pub name: String,
    pub topics: u32,
    pub partitions_per_topic: u32,
    pub message_size: u32,
    pub producers_per_topic: u32,
    /// Total messages/s of all producers; 0 = as fast as possible.
    pub producer_rate: f64,
    #[serde(default)]
    pub subscriptions_per_topic: u32,
    #[serde(default)]
    pub consumer_per_subscription: u32,
    #[serde(default)]
    pub consumer_backlog_size_g_b: f64,
    pub test_duration_minutes: f64,
    #[serde(default = "default_warmup")]
    pub warmup_duration_minutes: f64,
    // Accepted for compatibility with OMB's files; not used here.
    #[serde(default)]
    pub key_distributor: Option<String>,
    #[serde(default)]
    pub payload_file: Option<String>,
    #[serde(default)]
    pub use_randomized_payloads: Option<bool>,
    #[serde(default)]
    pub random_bytes_ratio: Option<f64>,
    #[serde(default)]
    pub randomized_payload_pool_size: Option<u64>,
    #[serde(default)]
    pub backlog_drain_ratio: Option<f64>,
}

/// OMB's default warm-up.
fn default_warmup() -> f64 {
    1.0
}

impl Workload {
    /// Reads and checks a workload file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the workload {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("workload {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self> {
        let w: Self = serde_yaml_ng::from_str(text).context("not an OMB workload")?;
        w.check()?;
        Ok(w)
    }

    fn check(&self) -> Result<()> {
        let positive = [
            ("topics", self.topics),
            ("partitionsPerTopic", self.partitions_per_topic),
            ("producersPerTopic", self.producers_per_topic),
        ];
        for (key, v) in positive {
            if v == 0 {
                bail!("{key} must be at least 1");
            }
        }
        if self.topics > 1000 {
            bail!("topics is {}; at most 1000", self.topics);
        }
        if self.partitions_per_topic > 256 {
            bail!(
                "partitionsPerTopic is {}; at most 256",
                self.partitions_per_topic
            );
        }
        if !(16..=1 << 20).contains(&self.message_size) {
            bail!(
                "messageSize is {}; from 16 to 1048576 bytes",
                self.message_size
            );
        }
        let minutes = [
            ("producerRate", self.producer_rate),
            ("consumerBacklogSizeGB", self.consumer_backlog_size_g_b),
            ("testDurationMinutes", self.test_duration_minutes),
            ("warmupDurationMinutes", self.warmup_duration_minutes),
        ];
        for (key, v) in minutes {
            if !(v.is_finite() && v >= 0.0) {
                bail!("{key} must be a number, 0 or more");
            }
        }
        if self.test_duration_minutes == 0.0 {
            bail!("testDurationMinutes must be more than 0");
        }
        for (key, v) in [
            ("testDurationMinutes", self.test_duration_minutes),
            ("warmupDurationMinutes", self.warmup_duration_minutes),
        ] {
            if v > 24.0 * 60.0 {
                bail!("{key} is over a day");
            }
        }
        if self.consumer_backlog_size_g_b > 64.0 {
            bail!("consumerBacklogSizeGB is over 64");
        }
        Ok(())
    }

    /// The scenario this workload's shape maps to.
    pub fn scenario(&self) -> ScenarioKind {
        if self.consumer_backlog_size_g_b > 0.0 {
            ScenarioKind::Catchup
        } else if self.subscriptions_per_topic > 0 && self.consumer_per_subscription > 0 {
            ScenarioKind::Tail
        } else if self.producer_rate == 0.0 {
            ScenarioKind::MaxRate
        } else {
            ScenarioKind::FixedRate
        }
    }

    /// `args` with the workload's shape in place of the flags it sets.
    pub fn apply(&self, args: &CompareArgs) -> Result<CompareArgs> {
        let producers = self.topics.checked_mul(self.producers_per_topic);
        let producers = match producers {
            Some(p) if p <= 4096 => p,
            _ => bail!(
                "workload {}: topics × producersPerTopic is over 4096 producers",
                self.name
            ),
        };
        let scenario = self.scenario();
        if scenario == ScenarioKind::Catchup && self.producer_rate == 0.0 {
            bail!(
                "workload {}: a backlog is read while producers publish at producerRate; give one",
                self.name
            );
        }
        let minutes = |m: f64| Duration::from_secs_f64(m * 60.0);
        Ok(CompareArgs {
            scenarios: vec![scenario],
            topics: self.topics,
            queues: self.partitions_per_topic,
            message_size: self.message_size,
            producers,
            rate: self.producer_rate,
            backlog_mib: (self.consumer_backlog_size_g_b * 1024.0).ceil() as u64,
            duration: minutes(self.test_duration_minutes),
            warmup: minutes(self.warmup_duration_minutes),
            ..args.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn args() -> CompareArgs {
        match crate::cli::Cli::parse_from(["strata-loadtest", "compare"]).command {
            crate::cli::Command::Compare(a) => a,
            _ => unreachable!("compare parses as compare"),
        }
    }

    /// Every workload shipped in loadtest/workloads/ parses and maps.
    #[test]
    fn shipped_workloads_parse() -> Result<()> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let w = Workload::load(&path)?;
                let a = w.apply(&args())?;
                assert_eq!(a.scenarios.len(), 1, "{}", path.display());
                seen += 1;
            }
        }
        assert!(seen >= 3, "only {seen} workloads in {}", dir.display());
        Ok(())
    }

    #[test]
    fn maps_keys_onto_a_comparison() -> Result<()> {
        let w = Workload::parse(
            "name: t\ntopics: 4\npartitionsPerTopic: 16\nmessageSize: 1024\n\
             payloadFile: payload/payload-1Kb.data\nsubscriptionsPerTopic: 1\n\
             consumerPerSubscription: 1\nproducersPerTopic: 2\nproducerRate: 5000\n\
             consumerBacklogSizeGB: 0\ntestDurationMinutes: 0.5\nwarmupDurationMinutes: 0.1\n",
        )?;
        let a = w.apply(&args())?;
        assert_eq!(a.scenarios, vec![ScenarioKind::Tail]);
        assert_eq!((a.topics, a.queues, a.producers), (4, 16, 8));
        assert_eq!((a.message_size, a.rate), (1024, 5000.0));
        assert_eq!(a.duration, Duration::from_secs(30));
        assert_eq!(a.warmup, Duration::from_secs(6));
        Ok(())
    }

    #[test]
    fn scenario_follows_the_shape() -> Result<()> {
        let base = "name: t\ntopics: 1\npartitionsPerTopic: 1\nmessageSize: 64\n\
                    producersPerTopic: 1\ntestDurationMinutes: 1\n";
        let scenario = |extra: &str| -> Result<ScenarioKind> {
            Ok(Workload::parse(&format!("{base}{extra}"))?.scenario())
        };
        assert_eq!(scenario("producerRate: 0\n")?, ScenarioKind::MaxRate);
        assert_eq!(scenario("producerRate: 10\n")?, ScenarioKind::FixedRate);
        assert_eq!(
            scenario("producerRate: 10\nconsumerBacklogSizeGB: 1\n")?,
            ScenarioKind::Catchup
        );
        Ok(())
    }

    /// Shapes `compare` refuses before it starts any system.
    #[tokio::test]
    async fn compare_refuses_uneven_topics_and_rate_0_fixed_scenarios() {
        let out = tempfile::tempdir().expect("tempdir");
        let mut a = args();
        a.out = out.path().to_path_buf();
        a.topics = 3;
        a.producers = 4;
        let err = crate::compare::run(&a)
            .await
            .expect_err("4 producers, 3 topics");
        assert!(
            format!("{err:#}").contains("multiple of --topics"),
            "{err:#}"
        );
        a.topics = 1;
        a.rate = 0.0;
        let err = crate::compare::run(&a).await.expect_err("fixed-rate at 0");
        assert!(
            format!("{err:#}").contains("needs a fixed --rate"),
            "{err:#}"
        );
    }

    #[test]
    fn refuses_what_it_cannot_run() {
        let base = "name: t\ntopics: 1\nmessageSize: 64\nproducersPerTopic: 1\n\
                    producerRate: 0\ntestDurationMinutes: 1\n";
        for (extra, expect) in [
            (
                "partitionsPerTopic: 0\n",
                "partitionsPerTopic must be at least 1",
            ),
            ("partitionsPerTopic: 1000\n", "at most 256"),
            ("partitionsPerTopic: 1\nretries: 3\n", "not an OMB workload"),
        ] {
            let err = Workload::parse(&format!("{base}{extra}")).expect_err(extra);
            assert!(format!("{err:#}").contains(expect), "{extra}: {err:#}");
        }
        let backlog = Workload::parse(&format!(
            "{base}partitionsPerTopic: 1\nconsumerBacklogSizeGB: 1\n"
        ))
        .expect("parses");
        assert!(backlog.apply(&args()).is_err());
    }
}
