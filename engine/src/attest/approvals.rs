//! The operator's approval records for MANAGER_CA issuance, as a sans-I/O state machine
//! that a host keeps in its store (the worker's Durable Object, a file) and serialises as
//! JSON.
//!
//! Each operation takes the time (`now`, Unix seconds) from its caller, as the engine has
//! no clock: a record's `createdAt` is set when it is first recorded and kept; its
//! `updatedAt` whenever it changes.
//!
//! - [`Approvals::record_pending`]: a conversion the service signed (or an image the
//!   operator registers) adds its enclaves as `pending`. Recording the same enclaves
//!   again (same MRENCLAVEs, MRSIGNER and ISV ids) returns the existing record with the
//!   new allowed subjects added; its status is kept.
//! - [`Approvals::approve`]: `pending` → `approved`. A revoked record stays revoked.
//! - [`Approvals::revoke`]: any → `revoked` (final).
//! - [`Approvals::find`]: the record for a quote's MRENCLAVE. When several cover it, a
//!   revoked one wins, then an approved one: revocation cannot be undone by registering the
//!   enclave again.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::issue::{valid_dns_name, ApprovalRecord, ApprovalStatus};

/// Most records kept (a host stores them all in one value).
pub const MAX_RECORDS: usize = 10_000;
/// Most allowed subjects per record.
pub const MAX_SUBJECTS: usize = 64;

/// Why an operation on the records failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    /// No record has that id.
    #[error("no approval record {0}")]
    NotFound(String),
    /// The record is revoked: it cannot be approved again.
    #[error("approval record {0} is revoked; revocation is final")]
    Revoked(String),
    /// A field is invalid (names it).
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

fn invalid(field: &'static str, message: impl Into<String>) -> ApprovalError {
    ApprovalError::Invalid {
        field,
        message: message.into(),
    }
}

/// What a conversion (or a registration) records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewEnclave {
    /// The SGX1 enclave's MRENCLAVE, 64 hex digits.
    pub mrenclave: String,
    /// The EDMM enclave's MRENCLAVE, when there is one.
    #[serde(default)]
    pub mrenclave2: Option<String>,
    /// MRSIGNER, 64 hex digits.
    pub mrsigner: String,
    /// ISVPRODID.
    pub isv_prod_id: u16,
    /// ISVSVN.
    pub isv_svn: u16,
    /// The image reference.
    #[serde(default)]
    pub image: String,
    /// The DNS names its certificates may carry.
    #[serde(default)]
    pub allowed_subjects: Vec<String>,
}

fn hex32(field: &'static str, v: &str) -> Result<String, ApprovalError> {
    let t = v.trim();
    if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(t.to_ascii_lowercase())
    } else {
        Err(invalid(
            field,
            format!("expected 64 hex digits, got {} characters", t.len()),
        ))
    }
}

impl NewEnclave {
    fn normalised(&self) -> Result<NewEnclave, ApprovalError> {
        if self.allowed_subjects.len() > MAX_SUBJECTS {
            return Err(invalid(
                "allowedSubjects",
                format!(
                    "{} names is more than the {MAX_SUBJECTS} allowed",
                    self.allowed_subjects.len()
                ),
            ));
        }
        let mut subjects: Vec<String> = Vec::new();
        for s in &self.allowed_subjects {
            let n = s.trim().trim_end_matches('.').to_ascii_lowercase();
            if !valid_dns_name(&n) {
                return Err(invalid(
                    "allowedSubjects",
                    format!("{s:?} is not a DNS name"),
                ));
            }
            if !subjects.contains(&n) {
                subjects.push(n);
            }
        }
        Ok(NewEnclave {
            mrenclave: hex32("mrenclave", &self.mrenclave)?,
            mrenclave2: self
                .mrenclave2
                .as_deref()
                .map(|m| hex32("mrenclave2", m))
                .transpose()?,
            mrsigner: hex32("mrsigner", &self.mrsigner)?,
            isv_prod_id: self.isv_prod_id,
            isv_svn: self.isv_svn,
            image: self.image.chars().take(1024).collect(),
            allowed_subjects: subjects,
        })
    }

    /// The record id: the first 16 bytes (hex) of SHA-256 over the enclave identity.
    fn id(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.mrenclave.as_bytes());
        h.update(b"/");
        h.update(self.mrenclave2.as_deref().unwrap_or("").as_bytes());
        h.update(b"/");
        h.update(self.mrsigner.as_bytes());
        h.update(self.isv_prod_id.to_be_bytes());
        h.update(self.isv_svn.to_be_bytes());
        hex::encode(&h.finalize()[..16])
    }
}

/// A registration by an image's `kiln verify --json` report (`POST /approvals`
/// `{"verifyReport": …, "image"?, "allowedSubjects"?}`): the enclaves are the report's,
/// so the operator copies no measurement by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReportRegistration {
    /// The image's verify report.
    pub verify_report: crate::verify::VerifyReport,
    /// The image reference.
    #[serde(default)]
    pub image: String,
    /// The DNS names its certificates may carry.
    #[serde(default)]
    pub allowed_subjects: Vec<String>,
}

impl ReportRegistration {
    /// The enclaves to record: the report must have passed, and name the SGX1 enclave
    /// (`sgx1`; `edmm` becomes `mrenclave2`), MRSIGNER and the ISV ids.
    pub fn new_enclave(&self) -> Result<NewEnclave, ApprovalError> {
        let r = &self.verify_report;
        if !r.passed {
            let failed: Vec<String> = r
                .failures()
                .map(|c| format!("{}/{}", c.subject, c.id))
                .collect();
            return Err(invalid(
                "verifyReport.passed",
                format!(
                    "the image failed verification ({}); only an image that verifies can be registered",
                    failed.join(", ")
                ),
            ));
        }
        let enclave = |name: &str| {
            r.mrenclaves
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, m)| m.clone())
        };
        let older =
            "is missing: the report comes from an older kiln; run `kiln verify --json` again";
        Ok(NewEnclave {
            mrenclave: enclave("sgx1")
                .ok_or_else(|| invalid("verifyReport.mrenclaves", "has no `sgx1` enclave"))?,
            mrenclave2: enclave("edmm"),
            mrsigner: r
                .mrsigner
                .clone()
                .ok_or_else(|| invalid("verifyReport.mrsigner", "is missing"))?,
            isv_prod_id: r
                .isv_prod_id
                .ok_or_else(|| invalid("verifyReport.isvProdId", older))?,
            isv_svn: r
                .isv_svn
                .ok_or_else(|| invalid("verifyReport.isvSvn", older))?,
            image: self.image.clone(),
            allowed_subjects: self.allowed_subjects.clone(),
        })
    }
}

/// Every approval record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Approvals {
    /// The records, oldest first.
    pub records: Vec<ApprovalRecord>,
}

impl Approvals {
    /// Records `new` as pending at `now` (Unix seconds), or adds its subjects (and its
    /// image, when the record has none) to the record of the same enclaves; that record's
    /// `createdAt` is kept and its `updatedAt` set to `now` when it changed.
    pub fn record_pending(
        &mut self,
        new: &NewEnclave,
        now: u64,
    ) -> Result<&ApprovalRecord, ApprovalError> {
        let n = new.normalised()?;
        let id = n.id();
        if let Some(i) = self.records.iter().position(|r| r.id == id) {
            let rec = &mut self.records[i];
            let before = (rec.allowed_subjects.len(), rec.image.is_empty());
            for s in &n.allowed_subjects {
                if !rec.allowed_subjects.contains(s) {
                    if rec.allowed_subjects.len() >= MAX_SUBJECTS {
                        return Err(invalid(
                            "allowedSubjects",
                            format!("record {id} already has {MAX_SUBJECTS} names"),
                        ));
                    }
                    rec.allowed_subjects.push(s.clone());
                }
            }
            if rec.image.is_empty() {
                rec.image = n.image;
            }
            if before != (rec.allowed_subjects.len(), rec.image.is_empty()) {
                rec.updated_at = now;
            }
            return Ok(&self.records[i]);
        }
        if self.records.len() >= MAX_RECORDS {
            return Err(invalid(
                "records",
                format!("the store holds the maximum of {MAX_RECORDS} records"),
            ));
        }
        self.records.push(ApprovalRecord {
            id,
            mrenclave: n.mrenclave,
            mrenclave2: n.mrenclave2,
            mrsigner: n.mrsigner,
            isv_prod_id: n.isv_prod_id,
            isv_svn: n.isv_svn,
            image: n.image,
            allowed_subjects: n.allowed_subjects,
            status: ApprovalStatus::Pending,
            created_at: now,
            updated_at: now,
        });
        Ok(&self.records[self.records.len() - 1])
    }

    fn get_mut(&mut self, id: &str) -> Result<&mut ApprovalRecord, ApprovalError> {
        self.records
            .iter_mut()
            .find(|r| r.id == id)
            .ok_or_else(|| ApprovalError::NotFound(id.chars().take(64).collect()))
    }

    /// Approves a pending (or already approved) record at `now` (Unix seconds; its
    /// `updatedAt` when the status changes).
    pub fn approve(&mut self, id: &str, now: u64) -> Result<&ApprovalRecord, ApprovalError> {
        let rec = self.get_mut(id)?;
        if rec.status == ApprovalStatus::Revoked {
            return Err(ApprovalError::Revoked(rec.id.clone()));
        }
        if rec.status != ApprovalStatus::Approved {
            rec.status = ApprovalStatus::Approved;
            rec.updated_at = now;
        }
        Ok(rec)
    }

    /// Revokes a record (final) at `now` (Unix seconds; its `updatedAt` when the status
    /// changes).
    pub fn revoke(&mut self, id: &str, now: u64) -> Result<&ApprovalRecord, ApprovalError> {
        let rec = self.get_mut(id)?;
        if rec.status != ApprovalStatus::Revoked {
            rec.status = ApprovalStatus::Revoked;
            rec.updated_at = now;
        }
        Ok(rec)
    }

    /// The record for `mrenclave` (hex, any case): a revoked one first, then an approved
    /// one, then a pending one.
    pub fn find(&self, mrenclave: &str) -> Option<&ApprovalRecord> {
        let covering = || self.records.iter().filter(|r| r.covers(mrenclave));
        covering()
            .find(|r| r.status == ApprovalStatus::Revoked)
            .or_else(|| covering().find(|r| r.status == ApprovalStatus::Approved))
            .or_else(|| covering().next())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(mrenclave: &str, subjects: &[&str]) -> NewEnclave {
        NewEnclave {
            mrenclave: mrenclave.repeat(32),
            mrenclave2: Some("EE".repeat(32)),
            mrsigner: "22".repeat(32),
            isv_prod_id: 1,
            isv_svn: 2,
            image: "registry.example/app:kiln".into(),
            allowed_subjects: subjects.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn pending_then_approved_then_revoked_for_good() {
        let mut a = Approvals::default();
        let id = a
            .record_pending(&new("11", &["App.Example.com."]), 100)
            .unwrap()
            .id
            .clone();
        assert_eq!(a.records[0].status, ApprovalStatus::Pending);
        assert_eq!(a.records[0].allowed_subjects, ["app.example.com"]);
        assert_eq!(a.records[0].mrenclave2.as_deref(), Some(&*"ee".repeat(32)));
        // The same enclaves again: one record, subjects merged, status kept.
        a.approve(&id, 200).unwrap();
        let again = a
            .record_pending(&new("11", &["b.example.com", "app.example.com"]), 300)
            .unwrap();
        assert_eq!(again.id, id);
        assert_eq!(again.status, ApprovalStatus::Approved);
        assert_eq!(again.allowed_subjects, ["app.example.com", "b.example.com"]);
        assert_eq!(a.records.len(), 1);
        // Both enclaves of the record are found.
        assert_eq!(a.find(&"11".repeat(32)).unwrap().id, id);
        assert_eq!(a.find(&"EE".repeat(32)).unwrap().id, id);
        assert!(a.find(&"33".repeat(32)).is_none());
        a.revoke(&id, 400).unwrap();
        assert_eq!(a.approve(&id, 500), Err(ApprovalError::Revoked(id.clone())));
        assert_eq!(
            a.find(&"11".repeat(32)).unwrap().status,
            ApprovalStatus::Revoked
        );
        assert!(matches!(
            a.approve("nope", 1),
            Err(ApprovalError::NotFound(_))
        ));
    }

    #[test]
    fn revocation_wins_over_another_approved_record() {
        let mut a = Approvals::default();
        let r1 = a.record_pending(&new("11", &[]), 1).unwrap().id.clone();
        // Same MRENCLAVE, other ISV SVN: another record.
        let mut other = new("11", &[]);
        other.isv_svn = 3;
        let r2 = a.record_pending(&other, 2).unwrap().id.clone();
        assert_ne!(r1, r2);
        a.approve(&r2, 3).unwrap();
        assert_eq!(a.find(&"11".repeat(32)).unwrap().id, r2);
        a.revoke(&r1, 4).unwrap();
        assert_eq!(a.find(&"11".repeat(32)).unwrap().id, r1);
    }

    #[test]
    fn invalid_fields_are_named() {
        let mut a = Approvals::default();
        let mut bad = new("11", &[]);
        bad.mrsigner = "00".into();
        let e = a.record_pending(&bad, 1).unwrap_err().to_string();
        assert!(e.starts_with("mrsigner:"), "{e}");
        let e = a
            .record_pending(&new("11", &["*.example.com"]), 1)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("allowedSubjects:"), "{e}");
        let many: Vec<String> = (0..=MAX_SUBJECTS)
            .map(|i| format!("h{i}.example.com"))
            .collect();
        let mut lots = new("11", &[]);
        lots.allowed_subjects = many;
        assert!(a.record_pending(&lots, 1).is_err());
        assert!(a.records.is_empty());
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Approvals>(&json).unwrap(), a);
    }

    #[test]
    fn times_are_set_and_kept() {
        let mut a = Approvals::default();
        let rec = a
            .record_pending(&new("11", &["a.example.com"]), 1_000)
            .unwrap();
        assert_eq!((rec.created_at, rec.updated_at), (1_000, 1_000));
        let id = rec.id.clone();
        // Recorded again with nothing new: unchanged, times kept.
        let rec = a
            .record_pending(&new("11", &["a.example.com"]), 2_000)
            .unwrap();
        assert_eq!((rec.created_at, rec.updated_at), (1_000, 1_000));
        // A new subject: createdAt kept, updatedAt moves.
        let rec = a
            .record_pending(&new("11", &["b.example.com"]), 3_000)
            .unwrap();
        assert_eq!((rec.created_at, rec.updated_at), (1_000, 3_000));
        let rec = a.approve(&id, 4_000).unwrap();
        assert_eq!((rec.created_at, rec.updated_at), (1_000, 4_000));
        // Approving again changes nothing.
        assert_eq!(a.approve(&id, 5_000).unwrap().updated_at, 4_000);
        assert_eq!(a.revoke(&id, 6_000).unwrap().updated_at, 6_000);
        assert_eq!(a.revoke(&id, 7_000).unwrap().updated_at, 6_000);
        // A refused approval leaves the times alone.
        assert!(a.approve(&id, 8_000).is_err());
        assert_eq!(
            (a.records[0].created_at, a.records[0].updated_at),
            (1_000, 6_000)
        );
        // The wire names, and records stored before times load with 0.
        let v = serde_json::to_value(&a.records[0]).unwrap();
        assert_eq!(
            (v["createdAt"].as_u64(), v["updatedAt"].as_u64()),
            (Some(1_000), Some(6_000))
        );
        let mut old = v.clone();
        let o = old.as_object_mut().unwrap();
        o.remove("createdAt");
        o.remove("updatedAt");
        let back: ApprovalRecord = serde_json::from_value(old).unwrap();
        assert_eq!((back.created_at, back.updated_at), (0, 0));
        assert_eq!(back.status, ApprovalStatus::Revoked);
    }

    fn report(passed: bool) -> crate::verify::VerifyReport {
        use crate::verify::{Check, CheckStatus};
        serde_json::from_value(serde_json::json!({
            "format": "kiln",
            "manifestDigest": "sha256:00",
            "passed": passed,
            "mrenclaves": [["sgx1", "AA".repeat(32)], ["edmm", "bb".repeat(32)]],
            "mrsigner": "cc".repeat(32),
            "isvProdId": 7,
            "isvSvn": 9,
            "checks": [Check {
                id: "mrenclave".into(),
                subject: "sgx1".into(),
                status: if passed { CheckStatus::Pass } else { CheckStatus::Fail },
                explanation: String::new(),
            }],
        }))
        .unwrap()
    }

    #[test]
    fn registers_by_a_verify_report() {
        let reg = ReportRegistration {
            verify_report: report(true),
            image: "r.example/app:1".into(),
            allowed_subjects: vec!["app.example.com".into()],
        };
        let n = reg.new_enclave().unwrap();
        assert_eq!(
            (n.isv_prod_id, n.isv_svn, n.mrenclave2.as_deref()),
            (7, 9, Some(&*"bb".repeat(32)))
        );
        let mut a = Approvals::default();
        let rec = a.record_pending(&n, 1).unwrap();
        assert_eq!(rec.mrenclave, "aa".repeat(32));
        assert_eq!(rec.status, ApprovalStatus::Pending);

        let failed = ReportRegistration {
            verify_report: report(false),
            ..reg.clone()
        };
        let e = failed.new_enclave().unwrap_err().to_string();
        assert!(
            e.starts_with("verifyReport.passed:") && e.contains("sgx1/mrenclave"),
            "{e}"
        );

        let mut old = reg.clone();
        old.verify_report.isv_svn = None;
        let e = old.new_enclave().unwrap_err().to_string();
        assert!(e.starts_with("verifyReport.isvSvn:"), "{e}");
        let mut gsc = reg;
        gsc.verify_report.mrenclaves = vec![("gsc".into(), "aa".repeat(32))];
        let e = gsc.new_enclave().unwrap_err().to_string();
        assert!(e.starts_with("verifyReport.mrenclaves:"), "{e}");
    }
}
