// The example app (not built here: no Android SDK on the build machine; see README.md). Include it next to the
// library module, e.g. in android/settings.gradle.kts: include(":example"); project(":example").projectDir =
// file("../examples/android-app").
plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "dev.ikelink.example"
    compileSdk = 34
    defaultConfig {
        applicationId = "dev.ikelink.example"
        minSdk = 24
        targetSdk = 34
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions { jvmTarget = "17" }
}

dependencies {
    implementation(project(":ikelink"))
}
