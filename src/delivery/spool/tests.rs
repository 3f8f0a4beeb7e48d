use super::*;
use std::os::unix::fs::MetadataExt;

#[test]
fn stage_then_publish_never_clobbers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Dir::root(tmp.path()).unwrap();
    let (id, _) = dir.stage(".x.part", b"one", Access::default()).unwrap();
    let meta = std::fs::metadata(tmp.path().join(".x.part")).unwrap();
    assert_eq!(meta.mode() & 0o777, FILE_MODE);
    assert_eq!((meta.dev(), meta.ino()), (id.dev, id.ino));
    assert_eq!(
        dir.publish(".x.part", "x.pdf", &sha256(b"one")).unwrap(),
        Published::Done
    );
    assert!(!tmp.path().join(".x.part").exists());
    assert_eq!(std::fs::read(tmp.path().join("x.pdf")).unwrap(), b"one");
    assert_eq!(dir.file_id("x.pdf").unwrap(), Some(id));

    // Same content again: recognised, temp cleaned.
    dir.stage(".x.part", b"one", Access::default()).unwrap();
    assert_eq!(
        dir.publish(".x.part", "x.pdf", &sha256(b"one")).unwrap(),
        Published::AlreadyThere
    );
    assert!(!tmp.path().join(".x.part").exists());

    // Other content: the existing file is kept.
    dir.stage(".x.part", b"two", Access::default()).unwrap();
    assert_eq!(
        dir.publish(".x.part", "x.pdf", &sha256(b"two")).unwrap(),
        Published::NameTaken
    );
    assert_eq!(std::fs::read(tmp.path().join("x.pdf")).unwrap(), b"one");
    assert!(tmp.path().join(".x.part").exists());
}

#[test]
fn site_folders_are_0770_and_shared_parents_0751() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("spool/sites/690000880/2021-10-29/X.pdf");
    folder(CopyKind::Spool, &file, Access::default()).unwrap();
    let mode = |p: &str| std::fs::metadata(tmp.path().join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("spool"), PARENT_MODE);
    assert_eq!(mode("spool/sites"), PARENT_MODE);
    assert_eq!(mode("spool/sites/690000880"), SITE_DIR_MODE);
    assert_eq!(mode("spool/sites/690000880/2021-10-29"), SITE_DIR_MODE);
    folder(
        CopyKind::QuarantineEml,
        &tmp.path().join("quarantine/1.eml"),
        Access::default(),
    )
    .unwrap();
    assert_eq!(mode("quarantine"), PRIVATE_DIR_MODE);
}

#[test]
fn errors_name_the_folder_not_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Dir::root(tmp.path()).unwrap();
    std::fs::create_dir(tmp.path().join("DUPONT_Jean_1.pdf")).unwrap();
    let e = dir
        .stage("DUPONT_Jean_1.pdf", b"x", Access::default())
        .unwrap_err();
    let text = e.to_string();
    assert!(text.contains(&tmp.path().display().to_string()), "{text}");
    assert!(!text.contains("DUPONT"), "{text}");
}

/// Regression: a day folder swapped for a link made the service write, and set modes and
/// groups, outside the site's tree.
#[test]
fn a_link_or_a_file_where_a_day_folder_should_be_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    let elsewhere = tmp.path().join("state");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, site.join("2021-10-29")).unwrap();
    std::fs::write(site.join("2021-10-30"), b"").unwrap();
    for day in ["2021-10-29", "2021-10-30"] {
        let e = folder(
            CopyKind::Spool,
            &site.join(day).join("X.pdf"),
            Access::default(),
        )
        .unwrap_err();
        assert!(e.is_refused(), "{e}");
        assert!(e.to_string().contains(&site.display().to_string()), "{e}");
    }
    let mode = std::fs::metadata(&elsewhere).unwrap().mode() & 0o7777;
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    assert_ne!(mode, SITE_DIR_MODE);
}

#[test]
fn a_link_at_a_file_name_is_never_written_through_nor_removed_as_ours() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Dir::root(tmp.path()).unwrap();
    let secret = tmp.path().join("secret");
    std::fs::write(&secret, b"keep").unwrap();
    std::os::unix::fs::symlink(&secret, tmp.path().join("X.pdf")).unwrap();
    // Staging over a link replaces the link, never the file it points to.
    dir.stage("X.pdf", b"new", Access::default()).unwrap();
    assert_eq!(std::fs::read(&secret).unwrap(), b"keep");
    std::fs::remove_file(tmp.path().join("X.pdf")).unwrap();
    std::os::unix::fs::symlink(&secret, tmp.path().join("X.pdf")).unwrap();
    assert!(!dir.remove("X.pdf", None).unwrap());
    assert_eq!(dir.sha256("X.pdf").unwrap(), None);
    assert_eq!(std::fs::read(&secret).unwrap(), b"keep");
}

#[test]
fn a_moved_copy_is_found_by_its_identity_inside_its_site_only() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("site/2021-10-29/X.pdf");
    let temp = tmp
        .path()
        .join("site/2021-10-29/.mss-dispatch.1.spool.part");
    let dir = folder(CopyKind::Spool, &path, Access::default()).unwrap();
    let (id, _) = dir
        .stage(".mss-dispatch.1.spool.part", b"pdf", Access::default())
        .unwrap();
    dir.publish(".mss-dispatch.1.spool.part", "X.pdf", &sha256(b"pdf"))
        .unwrap();
    // Staff move it into a folder of their own, and rename the day folder.
    std::fs::create_dir_all(tmp.path().join("site/imprimes/a")).unwrap();
    std::fs::rename(&path, tmp.path().join("site/imprimes/a/renamed.pdf")).unwrap();
    std::fs::rename(
        tmp.path().join("site/2021-10-29"),
        tmp.path().join("site/old"),
    )
    .unwrap();
    // A file with the old name elsewhere is not it.
    std::fs::create_dir_all(tmp.path().join("site/2021-10-29")).unwrap();
    std::fs::write(&path, b"pdf").unwrap();
    let mut finder = Finder::default();
    let found = finder
        .locate(CopyKind::Spool, &path, &temp, Some(id))
        .unwrap();
    assert!(found.complete);
    assert_eq!(found.at.len(), 1);
    assert_eq!(found.at[0].1, "renamed.pdf");
    let mut finder = Finder::default();
    let removal = finder
        .remove(CopyKind::Spool, &path, &temp, Some(id))
        .unwrap();
    assert_eq!(removal.removed, 1);
    assert!(!tmp.path().join("site/imprimes/a/renamed.pdf").exists());
    assert!(path.exists(), "the other file of that name stays");
    let mut finder = Finder::default();
    let found = finder
        .locate(CopyKind::Spool, &path, &temp, Some(id))
        .unwrap();
    assert!(found.at.is_empty() && found.complete);
}
