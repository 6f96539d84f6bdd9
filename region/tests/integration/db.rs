//! Database-level checks.

use region::db::{migration_names, Pool, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};

use crate::both;
use crate::util::{Backend, TestDb};

#[test]
fn both_migration_trees_have_the_same_migrations() {
    let s = migration_names(&SQLITE_MIGRATIONS);
    let p = migration_names(&POSTGRES_MIGRATIONS);
    assert!(!s.is_empty());
    assert_eq!(
        s, p,
        "migrations/sqlite and migrations/postgres must list the same migrations"
    );
}

both!(
    migrations_apply_once_and_are_idempotent,
    |b: Backend| async move {
        let db = TestDb::new(b);
        let url = db.config().database_url();
        let pool = Pool::connect(&url).unwrap();
        let first = pool.migrate().unwrap();
        assert_eq!(first.len(), migration_names(&SQLITE_MIGRATIONS).len());
        assert!(
            pool.migrate().unwrap().is_empty(),
            "a second run applies nothing"
        );
        // Every table the schema names exists and has the columns it names.
        pool.run_blocking(|c| {
            use diesel::prelude::*;
            use region::db::schema::*;
            machines::table
                .select(region::db::machines::MachineRow::as_select())
                .limit(1)
                .load(c)?;
            power_jobs::table
                .select(region::db::power::JobRow::as_select())
                .limit(1)
                .load(c)?;
            users::table
                .select(users::all_columns)
                .limit(1)
                .load::<(String, String, String, bool, i64)>(c)?;
            api_tokens::table
                .select(api_tokens::all_columns)
                .limit(1)
                .load::<(
                    String,
                    String,
                    String,
                    String,
                    String,
                    bool,
                    Option<i64>,
                    i64,
                    Option<i64>,
                    String,
                )>(c)?;
            subnets::table
                .select(subnets::all_columns)
                .limit(1)
                .load::<(
                    String,
                    String,
                    String,
                    Option<String>,
                    String,
                    Option<String>,
                    String,
                    String,
                    String,
                    bool,
                    i64,
                    i64,
                    String,
                    Option<i32>,
                    String,
                )>(c)?;
            interfaces::table
                .select(interfaces::all_columns)
                .limit(1)
                .load::<(
                    String,
                    String,
                    String,
                    String,
                    Option<String>,
                    Option<String>,
                )>(c)?;
            machine_tags::table
                .select(machine_tags::all_columns)
                .limit(1)
                .load::<(String, String)>(c)?;
            boot_resources::table
                .select(boot_resources::all_columns)
                .limit(1)
                .load::<(String, String, String, String, String, i64)>(c)?;
            boot_resource_files::table
                .select(boot_resource_files::all_columns)
                .limit(1)
                .load::<(String, String, String, String, i64, i64)>(c)?;
            racks::table.select(racks::all_columns).limit(1).load::<(
                String,
                String,
                String,
                Option<i64>,
                Option<String>,
                String,
                i64,
                Option<String>,
                Option<String>,
                Option<String>,
                String,
                String,
            )>(c)?;
            rack_enrolment_tokens::table
                .select(region::db::racks::EnrolmentRow::as_select())
                .limit(1)
                .load(c)?;
            volumes::table
                .select(region::db::volumes::VolumeRow::as_select())
                .limit(1)
                .load(c)?;
            settings::table
                .select(settings::all_columns)
                .limit(1)
                .load::<(String, String)>(c)?;
            events::table.select(events::all_columns).limit(1).load::<(
                i64,
                Option<String>,
                i64,
                String,
                String,
                String,
                Option<String>,
                Option<String>,
            )>(c)?;
            boot_tokens::table
                .select(boot_tokens::all_columns)
                .limit(1)
                .load::<(String, String, String, String, i64, i64)>(c)?;
            scripts::table
                .select(scripts::all_columns)
                .limit(1)
                .load::<(String, String, String, i32, i64, i64)>(c)?;
            script_results::table
                .select(script_results::all_columns)
                .limit(1)
                .load::<(
                    i64,
                    String,
                    String,
                    String,
                    String,
                    Option<i32>,
                    String,
                    i64,
                    Option<i64>,
                )>(c)?;
            audit_log::table
                .select(audit_log::all_columns)
                .limit(1)
                .load::<(i64, i64, String, String, String, String)>(c)?;
            Ok(())
        })
        .unwrap();
    }
);
