package android.security;
public final class KeyChain {
    public static java.security.PrivateKey getPrivateKey(android.content.Context context, String alias) throws KeyChainException, InterruptedException { return null; }
    public static java.security.cert.X509Certificate[] getCertificateChain(android.content.Context context, String alias) throws KeyChainException, InterruptedException { return null; }
}
