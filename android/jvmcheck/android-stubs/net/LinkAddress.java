package android.net;
public class LinkAddress { public java.net.InetAddress getAddress() { return null; } }
