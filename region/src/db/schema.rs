//! Diesel schema, written by hand in types both backends share (see `migrations/README.md`).
//! Must match `migrations/{sqlite,postgres}`; `tests/integration/db.rs` checks it against both.

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        password_hash -> Text,
        is_admin -> Bool,
        created_at -> BigInt,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Text,
        user_id -> Text,
        name -> Text,
        token_hash -> Text,
        prefix -> Text,
        is_session -> Bool,
        expires_at -> Nullable<BigInt>,
        created_at -> BigInt,
        last_used_at -> Nullable<BigInt>,
        scope -> Text,
    }
}

diesel::table! {
    subnets (id) {
        id -> Text,
        name -> Text,
        cidr -> Text,
        gateway -> Nullable<Text>,
        dns_servers -> Text,
        domain -> Nullable<Text>,
        dynamic_ranges -> Text,
        reserved_ranges -> Text,
        static_routes -> Text,
        managed -> Bool,
        created_at -> BigInt,
        updated_at -> BigInt,
        ntp_servers -> Text,
        lease_time_secs -> Nullable<Integer>,
        relay_addresses -> Text,
    }
}

diesel::table! {
    machines (system_id) {
        system_id -> Text,
        hostname -> Text,
        status -> Text,
        previous_status -> Nullable<Text>,
        status_deadline -> Nullable<BigInt>,
        architecture -> Text,
        boot_mac -> Nullable<Text>,
        power_type -> Text,
        power_parameters -> Text,
        owner_id -> Nullable<Text>,
        zone -> Text,
        pool -> Text,
        description -> Text,
        cpu_count -> Integer,
        memory_mib -> BigInt,
        storage_bytes -> BigInt,
        version -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
        hardware -> Nullable<Text>,
        power_secrets -> Text,
        power_state -> Text,
        power_state_at -> Nullable<BigInt>,
        skip_bmc_config -> Bool,
        domain_id -> Nullable<Text>,
        pod_id -> Nullable<Text>,
    }
}

diesel::table! {
    pods (id) {
        id -> Text,
        name -> Text,
        pod_type -> Text,
        power_address -> Text,
        power_secrets -> Text,
        cpu_over_commit_ratio -> Double,
        memory_over_commit_ratio -> Double,
        default_storage_pool -> Nullable<Text>,
        default_network -> Nullable<Text>,
        tags -> Text,
        zone -> Text,
        pool -> Text,
        state -> Text,
        message -> Nullable<Text>,
        discovered -> Nullable<Text>,
        rack_id -> Nullable<Text>,
        refreshed_at -> Nullable<BigInt>,
        version -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    pod_jobs (id) {
        id -> Text,
        pod_id -> Text,
        kind -> Text,
        system_id -> Nullable<Text>,
        spec -> Nullable<Text>,
        status -> Text,
        rack_id -> Nullable<Text>,
        taken_by -> Nullable<Text>,
        message -> Nullable<Text>,
        requested_by -> Nullable<Text>,
        created_at -> BigInt,
        taken_at -> Nullable<BigInt>,
        finished_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    power_jobs (id) {
        id -> Text,
        system_id -> Text,
        action -> Text,
        boot_device -> Nullable<Text>,
        purpose -> Text,
        status -> Text,
        rack_id -> Nullable<Text>,
        taken_by -> Nullable<Text>,
        power_state -> Nullable<Text>,
        message -> Nullable<Text>,
        requested_by -> Nullable<Text>,
        created_at -> BigInt,
        taken_at -> Nullable<BigInt>,
        finished_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    machine_tags (system_id, tag) {
        system_id -> Text,
        tag -> Text,
    }
}

diesel::table! {
    interfaces (id) {
        id -> Text,
        system_id -> Text,
        name -> Text,
        mac -> Text,
        subnet_id -> Nullable<Text>,
        ip -> Nullable<Text>,
    }
}

diesel::table! {
    boot_resources (id) {
        id -> Text,
        os -> Text,
        release -> Text,
        arch -> Text,
        kind -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    boot_resource_files (id) {
        id -> Text,
        resource_id -> Text,
        filename -> Text,
        sha256 -> Text,
        size -> BigInt,
        created_at -> BigInt,
    }
}

diesel::table! {
    racks (id) {
        id -> Text,
        name -> Text,
        status -> Text,
        last_seen -> Nullable<BigInt>,
        version -> Nullable<Text>,
        interfaces -> Text,
        created_at -> BigInt,
        token_hash -> Nullable<Text>,
        iscsi -> Nullable<Text>,
        images -> Nullable<Text>,
        approval -> Text,
        power_networks -> Text,
    }
}

diesel::table! {
    rack_enrolment_tokens (id) {
        id -> Text,
        secret_hash -> Text,
        auto_approve -> Bool,
        power_networks -> Text,
        created_by -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
        rack_id -> Nullable<Text>,
    }
}

diesel::table! {
    settings (key) {
        key -> Text,
        value -> Text,
    }
}

diesel::table! {
    events (id) {
        id -> BigInt,
        system_id -> Nullable<Text>,
        created_at -> BigInt,
        level -> Text,
        event_type -> Text,
        description -> Text,
        username -> Nullable<Text>,
        mac -> Nullable<Text>,
    }
}

diesel::table! {
    boot_tokens (token_hash) {
        token_hash -> Text,
        system_id -> Text,
        boot_id -> Text,
        purpose -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    boot_claims (claim_hash) {
        claim_hash -> Text,
        system_id -> Text,
        purpose -> Text,
        token_ttl_ms -> BigInt,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    scripts (name) {
        name -> Text,
        description -> Text,
        content -> Text,
        timeout_secs -> Integer,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    script_results (id) {
        id -> BigInt,
        system_id -> Text,
        boot_id -> Text,
        name -> Text,
        status -> Text,
        exit_code -> Nullable<Integer>,
        output -> Text,
        started_at -> BigInt,
        finished_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        created_at -> BigInt,
        username -> Text,
        action -> Text,
        target -> Text,
        detail -> Text,
    }
}

diesel::table! {
    ssh_keys (id) {
        id -> Text,
        user_id -> Text,
        key_type -> Text,
        key -> Text,
        comment -> Text,
        fingerprint -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    deployments (id) {
        id -> Text,
        system_id -> Text,
        instance_id -> Text,
        os -> Text,
        release -> Text,
        resource_id -> Text,
        target -> Text,
        storage_layout -> Text,
        boot_disk -> Text,
        boot_disk_serial -> Text,
        user_data -> Text,
        ssh_keys -> Text,
        state -> Text,
        esp_uuid -> Nullable<Text>,
        root_uuid -> Nullable<Text>,
        installer_output -> Text,
        created_at -> BigInt,
        installed_at -> Nullable<BigInt>,
        finished_at -> Nullable<BigInt>,
        proxy -> Bool,
    }
}

diesel::table! {
    erasures (system_id) {
        system_id -> Text,
        mode -> Text,
        requested_by -> Text,
        output -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    volumes (id) {
        id -> Text,
        system_id -> Text,
        deployment_id -> Text,
        rack_id -> Text,
        resource_id -> Text,
        initiator_iqn -> Text,
        secrets -> Text,
        requested_bytes -> BigInt,
        state -> Text,
        keep_file -> Bool,
        portal -> Nullable<Text>,
        clone_method -> Nullable<Text>,
        size_bytes -> Nullable<BigInt>,
        used_bytes -> Nullable<BigInt>,
        message -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    dns_domains (id) {
        id -> Text,
        name -> Text,
        ttl -> Integer,
        is_default -> Bool,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    dns_records (id) {
        id -> Text,
        domain_id -> Text,
        name -> Text,
        rtype -> Text,
        data -> Text,
        ttl -> Integer,
        created_at -> BigInt,
    }
}

diesel::joinable!(api_tokens -> users (user_id));
diesel::joinable!(dns_records -> dns_domains (domain_id));
diesel::joinable!(machines -> dns_domains (domain_id));
diesel::joinable!(machines -> users (owner_id));
diesel::joinable!(machine_tags -> machines (system_id));
diesel::joinable!(interfaces -> machines (system_id));
diesel::joinable!(boot_resource_files -> boot_resources (resource_id));
diesel::joinable!(boot_tokens -> machines (system_id));
diesel::joinable!(boot_claims -> machines (system_id));
diesel::joinable!(script_results -> machines (system_id));
diesel::joinable!(power_jobs -> machines (system_id));
diesel::joinable!(ssh_keys -> users (user_id));
diesel::joinable!(deployments -> machines (system_id));
diesel::joinable!(erasures -> machines (system_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    api_tokens,
    subnets,
    machines,
    machine_tags,
    interfaces,
    boot_resources,
    boot_resource_files,
    racks,
    events,
    audit_log,
    settings,
    boot_tokens,
    boot_claims,
    scripts,
    script_results,
    power_jobs,
    ssh_keys,
    deployments,
    erasures,
    volumes,
    dns_domains,
    dns_records,
    pods,
    pod_jobs,
);
