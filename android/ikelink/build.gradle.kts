// The Ikelink Android shell: VpnService glue around the UniFFI bindings of `ikelink-ffi`.
//
// Sources: this module's Kotlin (package dev.ikelink.android) plus the generated bindings
// (package uniffi.ikelink_ffi), taken from `bindings/generated/kotlin` of this repository. When you copy the
// module into your own project, copy that folder to `src/main/kotlin` instead and drop the extra srcDir below.
//
// Native library: `libikelink_ffi.so` per ABI under `src/main/jniLibs/<abi>/` (built with cargo-ndk, see README.md).
plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "dev.ikelink.android"
    compileSdk = 34 // targetSdk 34 in the app: foregroundServiceType systemExempted

    defaultConfig {
        // 24: ConnectivityManager network callbacks with NetworkRequest capabilities, KeyChain, Builder.setBlocking.
        minSdk = 24
        consumerProguardFiles("consumer-rules.pro")
    }

    sourceSets {
        getByName("main") {
            val generated = rootProject.file("../bindings/generated/kotlin")
            if (generated.isDirectory) {
                java.srcDir(generated)
            }
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions {
        jvmTarget = "17"
    }
}

dependencies {
    // The generated bindings call the Rust library through JNA; the AAR carries JNA's own native parts.
    implementation("net.java.dev.jna:jna:5.14.0@aar")
    // IkelinkVpnService.state is a StateFlow.
    api("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.8.1")

    // JVM unit tests of the shell's own logic (src/test): no device, no native library.
    testImplementation("junit:junit:4.13.2")
}
