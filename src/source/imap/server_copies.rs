//! The server copies kept for their purge: deleted when due, moved when a quarantined
//! certificate is released; found by UID while the folder's UIDVALIDITY holds, else by
//! Message-ID.

use super::*;

impl ImapSource {
    /// Deletes the copies, folder by folder; each gets its own result.
    pub(super) async fn purge_all(
        &mut self,
        copies: &[ServerCopy],
    ) -> Vec<Result<(), SourceError>> {
        let mut results: Vec<Result<(), SourceError>> = vec![Ok(()); copies.len()];
        if copies.is_empty() {
            return results;
        }
        for (folder, group) in by_folder(copies) {
            let rows: Vec<&ServerCopy> = group.iter().map(|i| &copies[*i]).collect();
            if let Err(e) = self.purge_in(folder, &rows).await {
                for i in &group {
                    results[*i] = Err(e.clone());
                }
                if self.session.is_none() {
                    // The connection is gone: the rest waits for the next pass.
                    for r in results.iter_mut().filter(|r| r.is_ok()) {
                        *r = Err(e.clone());
                    }
                    return results;
                }
            }
        }
        // Back to the folder the drain works on.
        if let Err(e) = self.reselect().await {
            tracing::warn!("{e}");
        }
        results
    }

    /// Moves the copies to `to`, folder by folder; each gets its own result.
    pub(super) async fn move_all(
        &mut self,
        copies: &[ServerCopy],
        to: &str,
    ) -> Vec<Result<ServerCopy, SourceError>> {
        let mut results: Vec<Result<ServerCopy, SourceError>> =
            vec![Err(SourceError::Transient("not attempted".into())); copies.len()];
        for (folder, group) in by_folder(copies) {
            let rows: Vec<&ServerCopy> = group.iter().map(|i| &copies[*i]).collect();
            match self.move_in(folder, &rows, to).await {
                Ok(moved) => {
                    for (i, m) in group.iter().zip(moved) {
                        results[*i] = Ok(m);
                    }
                }
                Err(e) => {
                    for i in &group {
                        results[*i] = Err(e.clone());
                    }
                    if self.session.is_none() {
                        return results;
                    }
                }
            }
        }
        if let Err(e) = self.reselect().await {
            tracing::warn!("{e}");
        }
        results
    }

    /// Deletes the copies in one folder: by their UID when the folder's UIDVALIDITY is still
    /// the one recorded, else found again by Message-ID.
    async fn purge_in(&mut self, folder: &str, copies: &[&ServerCopy]) -> Result<(), SourceError> {
        let (wire, is_inbox) = {
            let f = self.folders()?;
            let wire = f.wire(folder);
            let is_inbox = wire == f.inbox;
            (wire, is_inbox)
        };
        if is_inbox && !self.caps.uidplus {
            return Err(SourceError::Fatal(format!(
                "{}: deleting a copy kept in {folder} needs UIDPLUS (a plain EXPUNGE would also \
                 remove other people's deleted mail)",
                self.endpoint
            )));
        }
        let uids: Vec<u32> = self.locate(&wire, copies).await?.concat();
        if uids.is_empty() {
            return Ok(());
        }
        self.delete_in_own_folder(&uid_set(&uids)).await
    }

    /// Selects `wire` and finds the UIDs of copies kept there: by their recorded UID while
    /// the folder's UIDVALIDITY is unchanged, else by Message-ID. One list per copy, empty
    /// when it is not there.
    async fn locate(
        &mut self,
        wire: &str,
        copies: &[&ServerCopy],
    ) -> Result<Vec<Vec<u32>>, SourceError> {
        let mut s = self.take()?;
        let r = timeout(self.limit, s.select(wire)).await;
        let selected = self.settle(s, "SELECT", r)?;
        let validity = selected.uid_validity.map(|v| v.to_string());
        let mut out = Vec::with_capacity(copies.len());
        for c in copies {
            let by_uid = c.item.as_deref().and_then(|i| i.parse::<u32>().ok());
            match (by_uid, &c.validity) {
                (Some(uid), Some(v)) if Some(v) == validity.as_ref() => out.push(vec![uid]),
                _ => {
                    let Some(id) = &c.message_id else {
                        out.push(Vec::new());
                        continue;
                    };
                    let mut s = self.take()?;
                    let query = format!("HEADER Message-ID {}", quote(id));
                    let r = timeout(self.limit, s.uid_search(&query)).await;
                    out.push(self.settle(s, "UID SEARCH", r)?.into_iter().collect());
                }
            }
        }
        Ok(out)
    }

    /// Moves copies kept in `folder` to `to` (MOVE, or COPY and delete).
    async fn move_in(
        &mut self,
        folder: &str,
        copies: &[&ServerCopy],
        to: &str,
    ) -> Result<Vec<ServerCopy>, SourceError> {
        let (wire, dest, is_inbox) = {
            let f = self.folders()?;
            let wire = f.wire(folder);
            let is_inbox = wire == f.inbox;
            (wire, f.wire(to), is_inbox)
        };
        let found = self.locate(&wire, copies).await?;
        let uids: Vec<u32> = found.concat();
        let nowhere = |c: &ServerCopy| ServerCopy {
            folder: to.to_string(),
            validity: None,
            item: None,
            ..c.clone()
        };
        if uids.is_empty() {
            return Ok(copies.iter().map(|c| nowhere(c)).collect());
        }
        if is_inbox && !self.caps.uidplus && !self.caps.moves {
            return Err(SourceError::Fatal(format!(
                "{}: moving a copy kept in {folder} needs MOVE or UIDPLUS",
                self.endpoint
            )));
        }
        let set = uid_set(&uids);
        let (validity, map) = if self.caps.moves {
            self.copy_or_move("MOVE", &set, &dest).await?
        } else {
            let copied = self.copy_or_move("COPY", &set, &dest).await?;
            self.delete_in_own_folder(&set).await?;
            copied
        };
        Ok(found
            .iter()
            .zip(copies)
            .map(|(uids, c)| ServerCopy {
                folder: to.to_string(),
                validity: validity.map(|v| v.to_string()),
                item: uids.first().and_then(|u| map.get(u)).map(|u| u.to_string()),
                ..(*c).clone()
            })
            .collect())
    }

    /// Selects the incoming folder again, noting a new UIDVALIDITY.
    pub(super) async fn reselect(&mut self) -> Result<(), SourceError> {
        let inbox = self.folders()?.inbox.clone();
        let mut s = self.take()?;
        let r = timeout(self.limit, s.select(&inbox)).await;
        let selected = self.settle(s, "SELECT", r)?;
        self.key.validity = selected.uid_validity.unwrap_or(0).to_string();
        Ok(())
    }

    /// Deletes messages from one of the product's own folders, where every message is the
    /// product's: without UIDPLUS a plain EXPUNGE is safe there.
    async fn delete_in_own_folder(&mut self, set: &str) -> Result<(), SourceError> {
        if self.delete(set).await? {
            self.simple("EXPUNGE", "EXPUNGE".to_string()).await?;
        }
        Ok(())
    }

    /// Flags messages `\Deleted` and expunges exactly them when UIDPLUS allows; returns
    /// whether they stay on the server (flagged only).
    pub(super) async fn delete(&mut self, set: &str) -> Result<bool, SourceError> {
        self.simple(
            "UID STORE",
            format!("UID STORE {set} +FLAGS.SILENT (\\Deleted)"),
        )
        .await?;
        if self.caps.uidplus {
            self.simple("UID EXPUNGE", format!("UID EXPUNGE {set}"))
                .await?;
            Ok(false)
        } else {
            Ok(true)
        }
    }
}

/// The copies' folders, each with the indices of its copies.
fn by_folder(copies: &[ServerCopy]) -> Vec<(&str, Vec<usize>)> {
    let mut folders: Vec<&str> = copies.iter().map(|c| c.folder.as_str()).collect();
    folders.sort_unstable();
    folders.dedup();
    folders
        .into_iter()
        .map(|folder| {
            let group = (0..copies.len())
                .filter(|i| copies[*i].folder == folder)
                .collect();
            (folder, group)
        })
        .collect()
}

pub(super) fn dest_is_some(folder_name: &str) -> bool {
    !folder_name.is_empty()
}
